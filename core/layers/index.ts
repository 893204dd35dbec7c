/**
 * Layer tooling core exports for storage plugins: safe changeset application, path resolution
 * inside a root, OCI <-> overlay whiteouts, tree diffs and writing OCI layer tars.
 */
export { InvalidLayerError } from './errors';
export { chainIdHex, checkContainerId, entryComponents, whiteoutOf, WHITEOUT_PREFIX, OPAQUE_WHITEOUT, OVERLAY_OPAQUE_XATTR } from './names';
export { resolveInRoot, ensureDirs, type Resolved } from './resolve';
export { applyLayerTar, type ApplyOptions, type ApplyResult, type WhiteoutMode } from './apply';
export { lstatOrNull } from './applier';
export { applyLayerTarThreaded } from './apply-worker';
export { openLayerStream, layerCompression, type LayerCompression } from './compression';
export { diffTrees, overlayUpperChanges, existsInLowers, isOverlayWhiteout, sameContent, type LayerItem, type TreeDiff } from './tree';
export { writeLayerTar } from './write';
export { BackgroundRemover, diskUsage, drain, listQuarantined, quarantineDir, removeOrQuarantine, removeTree, usageByEntry, walkTree, type Quarantine, type WalkVisitor } from './util';
