import { BerthError } from '../contracts/errors';

/** A layer tar that breaks the rules (escapes the root, bad whiteout, truncated ...). HTTP 400. */
export class InvalidLayerError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(`invalid layer: ${message}`, 400, options);
  }
}
