/**
 * Errors that carry meaning across the core/plugin boundary. The engine and plugins throw a kind
 * (NotFoundError, ConflictError, ...); HTTP_STATUS is the one table that gives each kind Docker's
 * status code, which the API answers with, and `message` becomes Docker's `{"message": ...}` body.
 */
export const HTTP_STATUS = {
  InvalidArgument: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  /** An object (a container, an exec session) is in the wrong state for the operation. */
  State: 409,
  /** A container's command cannot be run: not found, or not executable (dockerd's 400). */
  StartFailure: 400,
  TooLarge: 413,
  /** The client went away (nginx's 499): nobody reads the answer, the work stops. */
  Canceled: 499,
  Internal: 500,
  NotImplemented: 501,
  /** Another server (a registry, a token server) answered badly or not at all. */
  Upstream: 502,
  Unavailable: 503,
  Timeout: 504,
} as const;

export type ErrorKind = keyof typeof HTTP_STATUS;

function kindOfStatus(status: number): ErrorKind {
  const kinds = Object.keys(HTTP_STATUS) as ErrorKind[];
  return kinds.find((k) => HTTP_STATUS[k] === status) ?? (status >= 400 && status < 500 ? 'InvalidArgument' : 'Internal');
}

export class BerthError extends Error {
  /** What went wrong, in the engine's terms. */
  readonly kind: ErrorKind;
  /** Docker's status code for it: HTTP_STATUS[kind], or the status another server answered. */
  readonly status: number;

  /**
   * A status is for errors that relay another server's answer (RegistryError) or wrap another
   * error keeping its status; everything else throws a kind (the subclasses below) or, for a
   * failure of berth itself, a plain BerthError (500).
   */
  constructor(message: string, status: number = HTTP_STATUS.Internal, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.status = status;
    this.kind = kindOfStatus(status);
  }
}

/** The request itself is malformed (HTTP 400). */
export class InvalidArgumentError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, HTTP_STATUS.InvalidArgument, options);
  }
}

/** The operation is refused on this object (a predefined network, a read-only rootfs; HTTP 403). */
export class ForbiddenError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, HTTP_STATUS.Forbidden, options);
  }
}

/** A thing the request named does not exist (HTTP 404). */
export class NotFoundError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, HTTP_STATUS.NotFound, options);
  }
}

/** The request conflicts with current state (HTTP 409). */
export class ConflictError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, HTTP_STATUS.Conflict, options);
  }
}

/** The object is in the wrong state for the operation (not running, already paused; HTTP 409). A ConflictError too. */
export class StateError extends ConflictError {
  override readonly kind: ErrorKind = 'State';
}

/** Why a container's command could not be started, with the exit code docker gives each reason. */
export const START_FAILURE_EXIT_CODES = { 'command-not-found': 127, 'command-not-executable': 126 } as const;

export type StartFailureReason = keyof typeof START_FAILURE_EXIT_CODES;

/**
 * The runtime could not start a container's (or an exec session's) command; `reason` says why,
 * as the launcher reported it, so clients pick docker run's exit code (127, 126) without reading
 * the message. Other start failures (a mount, a cgroup) are plain errors: docker run's 125.
 */
export class StartFailure extends BerthError {
  override readonly kind: ErrorKind = 'StartFailure';

  constructor(
    message: string,
    readonly reason: StartFailureReason,
    options?: { cause?: unknown },
  ) {
    super(message, HTTP_STATUS.StartFailure, options);
  }
}

/** The reason of a StartFailure, also of one thrown by a plugin built against its own copy of berth. */
export function startFailureReason(err: unknown): StartFailureReason | undefined {
  const e = err as { kind?: unknown; reason?: unknown } | null;
  return e?.kind === 'StartFailure' && typeof e.reason === 'string' && e.reason in START_FAILURE_EXIT_CODES ? (e.reason as StartFailureReason) : undefined;
}

/** A request body or object over a limit (HTTP 413). */
export class TooLargeError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, HTTP_STATUS.TooLarge, options);
  }
}

/** The client went away and the work stopped (HTTP 499). */
export class CanceledError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, HTTP_STATUS.Canceled, options);
  }
}

/** berth (or the configured plugin) cannot do this (HTTP 501). */
export class NotImplementedError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, HTTP_STATUS.NotImplemented, options);
  }
}

/** Out of a resource or not available right now; retrying later may work (HTTP 503). */
export class UnavailableError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, HTTP_STATUS.Unavailable, options);
  }
}

/** An operation with a deadline ran past it (HTTP 504). */
export class TimeoutError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, HTTP_STATUS.Timeout, options);
  }
}

/** Bad configuration: names the file (when known) and the key. */
export class ConfigError extends BerthError {
  constructor(
    readonly key: string,
    message: string,
    readonly file?: string,
  ) {
    super(`${file ? `${file}: ` : ''}${key}: ${message}`);
  }
}

/** Thrown by a plugin's init to opt out (e.g. the kernel lacks overlayfs). Not a failure. */
export class SkipPlugin extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'SkipPlugin';
  }
}

/** Remote failures (registry unreachable, auth refused, bad content), relaying a Docker-like status. */
export class RegistryError extends BerthError {}
