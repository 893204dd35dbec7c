/** Template errors, in Go's words (`template: :1: unexpected "}" in operand`). */
export class TemplateError extends Error {}

/** The 1-based line of a source offset, as Go's messages name it. */
export function lineOf(src: string, pos: number): number {
  let n = 1;
  for (let i = 0; i < pos && i < src.length; i++) if (src[i] === '\n') n++;
  return n;
}
