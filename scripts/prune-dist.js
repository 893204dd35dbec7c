#!/usr/bin/env node
// Removes compiled plugin folders whose source folder is gone (a plugin folder renamed or
// deleted): berthd loads every folder of dist/plugins as a built-in, and tsc never deletes what
// it emitted before, so a stale copy would be a second plugin claiming the same URI.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const compiled = path.join(root, 'dist', 'plugins');
if (fs.existsSync(compiled)) {
  for (const entry of fs.readdirSync(compiled, { withFileTypes: true })) {
    if (!entry.isDirectory() || fs.existsSync(path.join(root, 'plugins', entry.name))) continue;
    fs.rmSync(path.join(compiled, entry.name), { recursive: true, force: true });
    console.log(`prune-dist: removed dist/plugins/${entry.name} (no plugins/${entry.name} any more)`);
  }
}
