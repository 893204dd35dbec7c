/**
 * Log drivers and their options, checked the way dockerd checks them (daemon/logger/jsonfilelog):
 * `json-file` with `max-size` (Docker's units: a number with k, m, g ... taken as powers of 1000)
 * and `max-file`, and `none`. berthd's default comes from config (`logDriver`, `logOpts`, like
 * daemon.json's `log-driver` and `log-opts`); a container's HostConfig.LogConfig is completed
 * from it at create, as dockerd does, so inspect always shows what the container runs with.
 */

export interface LogConfig {
  Type: string;
  Config: Record<string, string>;
}

/** What the monitor does with the json-file log; no maxSize means it is never rotated (max-file alone is accepted and idle, as in dockerd). */
export interface LogRotation {
  maxSize?: number;
  maxFiles: number;
}

export const DEFAULT_LOG_DRIVER = 'json-file';
const DRIVERS = ['json-file', 'none'];
const JSON_FILE_OPTIONS = ['max-size', 'max-file', 'compress'];

/** `(key, message) -> Error`: the caller decides what a bad value is (a 400, a ConfigError). */
export type Fail = (key: string, message: string) => Error;

const UNITS: Record<string, number> = { k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15 };

/** go-units' FromHumanSize, which json-file's max-size uses: `10m`, `1.5MB`, `2KiB` (decimal all). */
export function parseHumanSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?) ?(?:([kmgtp])(?:b|ib)?|b)?$/i.exec(text);
  if (!m) return undefined;
  return Math.floor(Number(m[1]) * (m[2] ? UNITS[m[2].toLowerCase()] : 1));
}

/** Check a driver and its options; the rotation the monitor applies (undefined for `none`). */
export function checkLogConfig(cfg: LogConfig, fail: Fail): LogRotation | undefined {
  if (!DRIVERS.includes(cfg.Type)) {
    throw fail('Type', `logger: no log driver named '${cfg.Type}' is registered`);
  }
  const options = Object.entries(cfg.Config);
  if (cfg.Type === 'none') {
    if (options.length) throw fail(options[0][0], `the none log driver takes no options (got '${options[0][0]}')`);
    return undefined;
  }
  for (const [key, value] of options) {
    if (!JSON_FILE_OPTIONS.includes(key)) throw fail(key, `unknown log opt '${key}' for json-file log driver (known: ${JSON_FILE_OPTIONS.join(', ')})`);
    if (typeof value !== 'string') throw fail(key, `expected a string, got ${typeof value}`);
  }
  const { 'max-size': maxSizeText, 'max-file': maxFileText, compress } = cfg.Config;
  if (compress !== undefined && !/^(false|0|f)$/i.test(compress)) {
    throw fail('compress', `compress=${compress} is not supported: berth keeps rotated files uncompressed (use false)`);
  }
  let maxSize: number | undefined;
  if (maxSizeText !== undefined) {
    maxSize = parseHumanSize(maxSizeText);
    if (maxSize === undefined) throw fail('max-size', `invalid size '${maxSizeText}': expected a number with an optional unit (k, m, g), like 10m`);
    if (maxSize <= 0) throw fail('max-size', 'max-size must be a positive number');
  }
  let maxFiles = 1;
  if (maxFileText !== undefined) {
    if (!/^\d+$/.test(maxFileText)) throw fail('max-file', `invalid max-file '${maxFileText}': expected a whole number`);
    maxFiles = Number(maxFileText);
    if (maxFiles < 1) throw fail('max-file', 'max-file cannot be less than 1');
  }
  return { maxSize, maxFiles };
}

/**
 * A container's log config as dockerd completes it: no type means the daemon's driver; options
 * the container leaves out come from the daemon's when the driver is the daemon's.
 */
export function resolveLogConfig(requested: Partial<LogConfig> | null | undefined, daemon: LogConfig): LogConfig {
  const type = requested?.Type || daemon.Type;
  const own = requested?.Config ?? {};
  return { Type: type, Config: type === daemon.Type ? { ...daemon.Config, ...own } : { ...own } };
}
