/**
 * Errors that carry meaning across the core/plugin boundary. The API maps `status` onto the HTTP
 * status code and `message` onto Docker's `{"message": ...}` body.
 */
export class BerthError extends Error {
  constructor(message: string, readonly status = 500, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A thing the request named does not exist (HTTP 404). */
export class NotFoundError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 404, options);
  }
}

/** The request conflicts with current state (HTTP 409). */
export class ConflictError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 409, options);
  }
}

/** The request itself is malformed (HTTP 400). */
export class InvalidArgumentError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 400, options);
  }
}

/** Bad configuration: names the file (when known) and the key. */
export class ConfigError extends BerthError {
  constructor(readonly key: string, message: string, readonly file?: string) {
    super(`${file ? `${file}: ` : ''}${key}: ${message}`, 500);
  }
}

/** Thrown by a plugin's init to opt out (e.g. the kernel lacks overlayfs). Not a failure. */
export class SkipPlugin extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'SkipPlugin';
  }
}

/** Remote failures (registry unreachable, auth refused, bad content) with Docker-like status. */
export class RegistryError extends BerthError {}
