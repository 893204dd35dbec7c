import { describe, expect, it } from 'vitest';
import { humanDuration, humanSize, progressBar } from '../../core/util/format';

describe('humanSize (Docker: decimal units, 3 significant digits)', () => {
  it.each([
    [0, '0B'],
    [512, '512B'],
    [999, '999B'],
    [1000, '1kB'],
    [1024, '1.02kB'],
    [4_260_000, '4.26MB'],
    [4_264_999, '4.26MB'],
    [1_500_000_000, '1.5GB'],
    [123_456_789, '123MB'],
    [2_000_000_000_000, '2TB'],
    [3e15, '3PB'],
    [5e18, '5000PB'],
  ])('%d -> %s', (bytes, shown) => {
    expect(humanSize(bytes)).toBe(shown);
  });
});

describe('humanDuration (go-units HumanDuration)', () => {
  const second = 1000;
  const minute = 60 * second;
  const hour = 60 * minute;
  const day = 24 * hour;
  const week = 7 * day;
  const month = 30 * day;
  const year = 365 * day;
  // The table of go-units duration_test.go, plus the boundaries where rounding would differ.
  it.each([
    [450, 'Less than a second'],
    [999, 'Less than a second'],
    [1 * second, '1 second'],
    [1.9 * second, '1 second'],
    [45 * second, '45 seconds'],
    [59 * second, '59 seconds'],
    [59.9 * second, '59 seconds'],
    [60 * second, 'About a minute'],
    [119 * second, 'About a minute'],
    [3 * minute, '3 minutes'],
    [35 * minute, '35 minutes'],
    [35 * minute + 40 * second, '35 minutes'],
    [59 * minute + 59 * second, '59 minutes'],
    [1 * hour, 'About an hour'],
    [1 * hour + 29 * minute, 'About an hour'],
    [1 * hour + 31 * minute, '2 hours'],
    [3 * hour + 29 * minute, '3 hours'],
    [3 * hour + 31 * minute, '4 hours'],
    [24 * hour, '24 hours'],
    [1 * day + 12 * hour, '36 hours'],
    [2 * day, '2 days'],
    [7 * day, '7 days'],
    [13 * day + 5 * hour, '13 days'],
    [2 * week, '2 weeks'],
    [2 * week + 4 * day, '2 weeks'],
    [4 * week + 3 * day, '4 weeks'],
    [1 * month, '4 weeks'],
    [1 * month + 2 * week, '6 weeks'],
    [2 * month, '2 months'],
    [2 * month + 2 * week, '2 months'],
    [5 * month + 2 * week, '5 months'],
    [24 * month, '24 months'],
    [24 * month + 2 * week, '2 years'],
    [3 * year + 2 * month, '3 years'],
  ])('%d ms -> %s', (ms, shown) => {
    expect(humanDuration(ms)).toBe(shown);
  });
});

describe('progressBar', () => {
  it('draws Docker-style bars', () => {
    expect(progressBar(0, 100, 10)).toBe(`[${' '.repeat(10)}] ${'0B'.padStart(8)}/100B`);
    expect(progressBar(50, 100, 10)).toBe(`[====>     ] ${'50B'.padStart(8)}/100B`);
    expect(progressBar(100, 100, 10)).toBe(`[==========] ${'100B'.padStart(8)}/100B`);
    expect(progressBar(1_500_000, 0)).toBe('1.5MB');
  });
});
