#!/usr/bin/env node
// Compiles berth's C programs with the machine's gcc: core/launcher/launch/*.c into
// dist/launcher/berth-launch (the launcher and monitor) and core/launcher/init.c into
// dist/launcher/berth-init (the reaper `run --init` puts at pid 1), and core/cri/pause.c into
// dist/launcher/berth-pause (what holds a CRI pod's namespaces). Static when the C library
// allows it (smaller monitor RSS, no loader work at each start, and init works in any rootfs).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'dist', 'launcher');
const cc = process.env.CC || 'gcc';

function fail(message) {
  console.error(`build-launcher: ${message}`);
  process.exit(1);
}

const probe = spawnSync(cc, ['--version'], { stdio: 'ignore' });
if (probe.error || probe.status !== 0) {
  fail(`the C compiler \`${cc}\` was not found; install gcc (Debian: apt-get install gcc libc6-dev) or set CC`);
}
fs.mkdirSync(outDir, { recursive: true });

/** `sourceName`: one C file, or a folder whose .c files make one program. */
function build(sourceName, outputName) {
  const source = path.join(root, 'core', 'launcher', sourceName);
  const output = path.join(outDir, outputName);
  if (!fs.existsSync(source)) fail(`missing source ${source}`);
  const sources = fs.statSync(source).isDirectory()
    ? fs.readdirSync(source).filter((f) => f.endsWith('.c')).sort().map((f) => path.join(source, f))
    : [source];
  const flags = ['-O2', '-Wall', '-Wextra', '-std=gnu11', '-D_FORTIFY_SOURCE=2', '-o', `${output}.tmp`, ...sources];
  let result = spawnSync(cc, [...flags, '-static'], { stdio: ['ignore', 'inherit', 'pipe'] });
  if (result.status !== 0) {
    // No static libc on this machine: a dynamic binary works the same, with a little more RSS.
    result = spawnSync(cc, flags, { stdio: ['ignore', 'inherit', 'pipe'] });
  }
  if (result.stderr?.length) process.stderr.write(result.stderr);
  if (result.error || result.status !== 0) fail(`${cc} failed to compile ${path.relative(root, source)}`);
  fs.renameSync(`${output}.tmp`, output);
  fs.chmodSync(output, 0o755);
  console.log(`build-launcher: ${path.relative(root, output)}`);
}

build('launch', 'berth-launch');
build('init.c', 'berth-init');
build('../cri/pause.c', 'berth-pause');
