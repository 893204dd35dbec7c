/** Formatting shared by the daemon's progress messages and the CLI's tables. Pure, dependency-free. */

/** Decimal sizes as Docker prints them: 4.26MB, 512B, 1.5GB. */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  if (i === 0) return `${v}B`;
  return `${Number(v.toPrecision(3))}${units[i]}`;
}

/**
 * Docker's HumanDuration (go-units): "2 weeks", "About an hour", "Less than a second". Seconds and
 * minutes are truncated, hours rounded, and days/weeks/months/years whole divisions of those hours.
 */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.floor(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.floor(ms / 3_600_000 + 0.5);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

/** The text bar Docker puts in a progress message: `[=====>      ]  1.2MB/3.4MB`. */
export function progressBar(current: number, total: number, width = 50): string {
  if (!total || total <= 0) return humanSize(current);
  const filled = Math.min(width, Math.floor((current / total) * width));
  const bar = filled ? '='.repeat(filled - 1) + (filled === width ? '=' : '>') : '';
  return `[${bar.padEnd(width)}] ${humanSize(current).padStart(8)}/${humanSize(total)}`;
}
