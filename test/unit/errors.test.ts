/**
 * Error kinds and the one table that gives each its HTTP status: the engine throws kinds, the API
 * answers with the table's status, and an error relaying another server's status keeps it.
 */
import { describe, expect, it } from 'vitest';
import { httpStatus } from '../../core/api/router';
import {
  BerthError,
  CanceledError,
  ConfigError,
  ConflictError,
  ForbiddenError,
  HTTP_STATUS,
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  RegistryError,
  StartFailure,
  TimeoutError,
  TooLargeError,
  UnavailableError,
  startFailureReason,
} from '../../core/contracts/errors';

describe('error kinds', () => {
  it('each kind class carries its kind and the status Docker answers with', () => {
    const cases = [
      [new InvalidArgumentError('x'), 'InvalidArgument', 400],
      [new ForbiddenError('x'), 'Forbidden', 403],
      [new NotFoundError('x'), 'NotFound', 404],
      [new ConflictError('x'), 'Conflict', 409],
      [new TooLargeError('x'), 'TooLarge', 413],
      [new CanceledError('x'), 'Canceled', 499],
      [new BerthError('x'), 'Internal', 500],
      [new ConfigError('key', 'x'), 'Internal', 500],
      [new NotImplementedError('x'), 'NotImplemented', 501],
      [new UnavailableError('x'), 'Unavailable', 503],
      [new TimeoutError('x'), 'Timeout', 504],
      [new StartFailure('x', 'command-not-found'), 'StartFailure', 400],
    ] as const;
    for (const [err, kind, status] of cases) {
      expect({ name: err.name, kind: err.kind, status: err.status, http: httpStatus(err) }).toEqual({ name: err.constructor.name, kind, status, http: status });
      expect(HTTP_STATUS[kind]).toBe(status);
    }
  });

  it('a relayed status is kept and named by its kind', () => {
    expect(new RegistryError('unauthorized: ...', 401)).toMatchObject({ kind: 'Unauthorized', status: 401 });
    expect(new RegistryError('registry answered 502', 502)).toMatchObject({ kind: 'Upstream', status: 502 });
    expect(new RegistryError('registry answered 429', 429)).toMatchObject({ kind: 'InvalidArgument', status: 429 });
    expect(httpStatus(new RegistryError('registry answered 429', 429))).toBe(429);
  });

  it('keeps the cause and the message', () => {
    const cause = new Error('EACCES');
    const err = new NotFoundError('No such image: x', { cause });
    expect(err.message).toBe('No such image: x');
    expect(err.cause).toBe(cause);
  });

  it('the API answers 500 for anything that is not a berth error, and honours a copy of the classes', () => {
    expect(httpStatus(new Error('boom'))).toBe(500);
    expect(httpStatus(Object.assign(new Error('has a status but no kind'), { status: 404 }))).toBe(500);
    expect(httpStatus(undefined)).toBe(500);
    // What a plugin built against its own copy of berth throws: another class, same shape.
    expect(httpStatus(Object.assign(new Error('No such thing'), { kind: 'NotFound', status: 404 }))).toBe(404);
  });
});

describe('start failures', () => {
  it("carry their reason; a plugin's own copy of the class is recognised by kind, other errors are not", () => {
    expect(startFailureReason(new StartFailure('exec: "/x"', 'command-not-executable'))).toBe('command-not-executable');
    expect(startFailureReason({ kind: 'StartFailure', status: 400, reason: 'command-not-found', message: 'from a plugin' })).toBe('command-not-found');
    expect(startFailureReason({ kind: 'StartFailure', status: 400, reason: 'something-else' })).toBeUndefined();
    expect(startFailureReason(new InvalidArgumentError('exec: "/x": executable file not found in $PATH'))).toBeUndefined();
    expect(startFailureReason(null)).toBeUndefined();
  });
});
