/**
 * Go's text/tabwriter as docker's tables use it (minwidth 10, tabwidth 1, padding 3, ' ', no flags):
 * tab-terminated cells, each column block as wide as its widest cell plus the padding, at least
 * the minimum width; a line's last cell is not part of a column and is written as it is.
 */
export function tabwrite(text: string, minwidth = 10, padding = 3): string {
  const lines = text.split('\n').map((l) => l.split('\t'));
  const width = (s: string) => [...s].length;
  const widths: number[] = [];
  const out: string[] = [];
  const writeLines = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      out.push(lines[i].map((cell, j) => (j < widths.length ? cell + ' '.repeat(Math.max(0, widths[j] - width(cell))) : cell)).join(''));
    }
  };
  const format = (line0: number, line1: number): void => {
    const column = widths.length;
    for (let row = line0; row < line1; row++) {
      if (column >= lines[row].length - 1) continue;
      writeLines(line0, row);
      line0 = row;
      let w = minwidth;
      for (; row < line1 && column < lines[row].length - 1; row++) w = Math.max(w, width(lines[row][column]) + padding);
      widths.push(w);
      format(line0, row);
      widths.pop();
      line0 = row;
    }
    writeLines(line0, line1);
  };
  format(0, lines.length);
  return out.join('\n');
}
