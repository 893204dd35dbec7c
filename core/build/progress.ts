/**
 * The lines a build prints, in the classic builder's words (`Step 2/5 : RUN ...`, ` ---> 1a2b3c`,
 * ` ---> Using cache`): docker and docker-py read some of them (the image ID, RUN's stderr).
 */
import type { ProgressEvent } from '../contracts/types';
import { progressMessage } from '../util/progress';
import type { Instruction } from './dockerfile';

/** Where the build's messages go (the API turns them into Docker's JSON messages). */
export interface BuildOutput {
  /** `{"stream": text}`: step lines and RUN output. */
  stream(text: string): void;
  /** Any other message (pull progress, aux). */
  raw(msg: Record<string, unknown>): void;
}

const shortId = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

export class BuildProgress {
  private step = 0;
  /** Steps of the stages up to the target, set once they are known. */
  totalSteps = 0;

  constructor(private readonly out: BuildOutput) {}

  stepLine(ins: Instruction): void {
    this.step++;
    this.out.stream(`Step ${this.step}/${this.totalSteps} : ${ins.original}\n`);
  }

  /** The image a step or a FROM ended in (`scratch` for FROM scratch). */
  image(id: string | undefined): void {
    this.out.stream(` ---> ${id ? shortId(id) : 'scratch'}\n`);
  }

  usingCache(): void {
    this.out.stream(' ---> Using cache\n');
  }

  triggers(count: number): void {
    this.out.stream(`# Executing ${count} build trigger${count > 1 ? 's' : ''}\n`);
  }

  runningIn(containerId: string): void {
    this.out.stream(` ---> Running in ${shortId(containerId)}\n`);
  }

  /** A line a RUN printed. dockerd shows RUN's stderr in bright red; clients such as docker-py look for it. */
  runOutput(stream: 'stdout' | 'stderr', text: string): void {
    this.out.stream(stream === 'stderr' ? `\x1b[91m${text}\x1b[0m` : text);
  }

  removedContainer(containerId: string): void {
    this.out.stream(`Removing intermediate container ${shortId(containerId)}\n`);
  }

  pull(event: ProgressEvent): void {
    this.out.raw(progressMessage(event));
  }

  unusedArgs(names: string[]): void {
    this.out.stream(`[Warning] One or more build-args [${names.join(' ')}] were not consumed\n`);
  }

  built(id: string, tags: string[]): void {
    this.out.raw({ aux: { ID: id } });
    this.out.stream(`Successfully built ${shortId(id)}\n`);
    for (const t of tags) this.out.stream(`Successfully tagged ${t}\n`);
  }
}
