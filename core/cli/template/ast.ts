/** The parse tree of a Go text/template: what the parser builds and the evaluator walks. */

export type Arg =
  | { kind: 'dot'; pos: number }
  | { kind: 'field'; names: string[]; pos: number }
  | { kind: 'var'; name: string; names: string[]; pos: number }
  | { kind: 'func'; name: string; pos: number }
  | { kind: 'chain'; node: Arg; names: string[]; pos: number }
  | { kind: 'pipe'; pipe: Pipe; pos: number }
  | { kind: 'string'; value: string; pos: number }
  | { kind: 'number'; value: number; text: string; pos: number }
  | { kind: 'bool'; value: boolean; pos: number }
  | { kind: 'nil'; pos: number };

export interface Command {
  args: Arg[];
  pos: number;
  text: string;
}

export interface Pipe {
  decl: string[];
  assign: boolean;
  cmds: Command[];
  pos: number;
  text: string;
}

export interface ControlNode {
  kind: 'if' | 'with' | 'range';
  pipe: Pipe;
  list: Node[];
  elseList?: Node[];
  pos: number;
}

export type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Pipe; pos: number }
  | ControlNode
  | { kind: 'break' | 'continue'; pos: number }
  | { kind: 'template'; name: string; pipe?: Pipe; pos: number };

export interface Parsed {
  root: Node[];
  defines: Map<string, Node[]>;
  source: string;
}
