/** The errors a build reports in Docker's words; both are the client's fault (HTTP 400 in-stream). */
import { BerthError, InvalidArgumentError } from '../contracts/errors';

/** A build failure in Docker's words; `code` is the failing RUN's exit code, when there was one. */
export class BuildError extends BerthError {
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message, 400);
  }
}

/** A COPY/ADD or context error in Docker's words (`COPY failed: ...`). */
export class CopyError extends InvalidArgumentError {}
