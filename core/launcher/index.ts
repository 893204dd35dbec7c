/** What core exports for runtimes about the native launcher (see launch/launcher.h for the C side). */
export * from './plan';
export * from './caps';
export * from './binary';
export * from './state';
export * from './attach';
