import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../core/contracts';
import { canonicalHost, isLoopbackHost } from '../../plugins/registry-distribution/endpoints';
import manifest from '../../plugins/registry-distribution/index';
import { defaults, parseConfig } from '../../plugins/registry-distribution/config';

function configError(raw: Record<string, unknown>): ConfigError {
  try {
    parseConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('registry.distribution config', () => {
  it('is a registry plugin with id distribution whose defaults parse', () => {
    expect(manifest.type).toBe('registry');
    expect(manifest.id).toBe('distribution');
    expect(parseConfig({ ...defaults })).toEqual(defaults);
    expect(parseConfig({})).toEqual(defaults);
  });

  it('accepts registries with insecure and mirrors', () => {
    const cfg = parseConfig({
      registries: {
        'localhost:5000': { insecure: true },
        'docker.io': { mirrors: ['127.0.0.1:5000', 'https://mirror.example.com', 'http://[::1]:5001/'] },
      },
      concurrency: 3,
      timeoutMs: 5000,
      retries: 0,
    });
    expect(cfg.registries['localhost:5000']).toEqual({ insecure: true, mirrors: [] });
    expect(cfg.registries['docker.io'].mirrors).toHaveLength(3);
    expect(cfg.registries['docker.io'].insecure).toBe(false);
    expect(cfg.concurrency).toBe(3);
  });

  it('names the key of a bad value', () => {
    expect(configError({ concurrency: 0 }).key).toBe('concurrency');
    expect(configError({ timeoutMs: 'fast' }).key).toBe('timeoutMs');
    expect(configError({ retries: 1.5 }).key).toBe('retries');
    expect(configError({ retries: -1 }).message).toMatch(/^retries: expected an integer from 0 to 10, got -1/);
    expect(configError({ registries: [] }).key).toBe('registries');
    expect(configError({ registries: { 'h:5000': { insecure: 'yes' } } }).key).toBe('registries.h:5000.insecure');
    expect(configError({ registries: { 'h:5000': { mirrors: 'm' } } }).key).toBe('registries.h:5000.mirrors');
    expect(configError({ registries: { 'h:5000': { mirrors: ['ok:1', 'ftp://x'] } } }).key).toBe('registries.h:5000.mirrors[1]');
    expect(configError({ registries: { 'h:5000': { insecur: true } } }).key).toBe('registries.h:5000.insecur');
    expect(configError({ registries: { 'h:5000': true } }).key).toBe('registries.h:5000');
  });

  it('refuses hosts written with a scheme, a path or a bad port', () => {
    expect(configError({ registries: { 'https://reg.example.com': {} } }).key).toBe('registries.https://reg.example.com');
    expect(configError({ registries: { 'reg.example.com/path': {} } }).key).toBe('registries.reg.example.com/path');
    expect(configError({ registries: { 'reg:99999': {} } }).key).toBe('registries.reg:99999');
  });

  it('refuses unknown top-level keys (typos)', () => {
    const err = configError({ timeout: 5 });
    expect(err.key).toBe('timeout');
    expect(err.message).toMatch(/unknown key/);
  });
});

describe('host helpers', () => {
  it('recognises loopback hosts', () => {
    for (const h of ['127.0.0.1:5000', '127.1.2.3', 'localhost', 'localhost:5000', '[::1]:5000', '::1']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['10.0.0.1:5000', 'registry.example.com', 'docker.io', '[::2]:5000', 'localhost.example.com']) expect(isLoopbackHost(h)).toBe(false);
  });

  it('maps docker.io aliases to docker.io', () => {
    expect(canonicalHost('index.docker.io')).toBe('docker.io');
    expect(canonicalHost('registry-1.docker.io')).toBe('docker.io');
    expect(canonicalHost('127.0.0.1:5000')).toBe('127.0.0.1:5000');
  });
});
