/**
 * Test images made by tools written by others (umoci builds OCI layouts from /bin/busybox,
 * skopeo pushes them), so berth is checked against formats it did not produce itself.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { isRoot } from './env';

const execFileP = promisify(execFile);

/** Applets linked to busybox in /bin of every fixture image. */
export const BUSYBOX_APPLETS = [
  'sh',
  'ls',
  'echo',
  'cat',
  'true',
  'false',
  'sleep',
  'env',
  'id',
  'mkdir',
  'rm',
  'touch',
  'hostname',
  'ps',
  'pwd',
  'test',
  'grep',
  'wc',
  'head',
  'stat',
  'readlink',
  'mount',
  'uname',
];

export interface BusyboxLayoutOptions {
  /** Number of layers (default 1): layer 1 holds busybox, each further layer adds /layer-N.txt. */
  layers?: number;
  /** path inside the image -> content, added in the last layer. */
  extraFiles?: Record<string, string>;
  /** Tag inside the layout (default 'latest'). */
  tag?: string;
  /** Architecture written to the config (default 'amd64'); the binary is always the host's busybox. */
  architecture?: string;
  /** Default command (default ['sh']). */
  cmd?: string[];
  /** Extra env entries (PATH is always set). */
  env?: string[];
}

export interface BuiltLayout {
  /** The OCI layout directory. */
  dir: string;
  tag: string;
  /** `DIR:TAG`, as umoci and skopeo's `oci:` transport name it. */
  ref: string;
  /** Digest of the image manifest the tag points at. */
  manifestDigest: string;
}

async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

const umoci = (args: string[]) => run('umoci', args);

/** A fresh temp dir; remove it with `fs.rm(dir, {recursive: true, force: true})`. */
export async function makeTempDir(prefix = 'berth-test-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/**
 * A docker-archive of a busybox image tagged `tag`, ready for `berth load -i` (or POST
 * /images/load): built by umoci in `work`/layout, converted by skopeo.
 */
export async function busyboxArchive(work: string, tag: string, opts: BusyboxLayoutOptions = {}): Promise<string> {
  const layout = await buildBusyboxLayout(path.join(work, 'layout'), opts);
  const archive = path.join(work, 'image.tar');
  await execFileP('skopeo', ['copy', '-q', `oci:${layout.ref}`, `docker-archive:${archive}:${tag}`]);
  return archive;
}

/**
 * Build a busybox image into the OCI layout `dir` (created when missing; several tags may share
 * one layout). Uses only umoci: init, new, unpack, repack, config, gc.
 */
export async function buildBusyboxLayout(dir: string, opts: BusyboxLayoutOptions = {}): Promise<BuiltLayout> {
  const tag = opts.tag ?? 'latest';
  const layers = opts.layers ?? 1;
  if (layers < 1) throw new Error('buildBusyboxLayout: layers must be >= 1');
  const image = `${dir}:${tag}`;
  const exists = await fs.stat(path.join(dir, 'index.json')).then(
    () => true,
    () => false,
  );
  if (!exists) await umoci(['init', '--layout', dir]);
  await umoci(['new', '--image', image]);
  const rootless = isRoot ? [] : ['--rootless'];
  const work = await makeTempDir('berth-umoci-');
  try {
    for (let layer = 1; layer <= layers; layer++) {
      const bundle = path.join(work, `bundle-${layer}`);
      await umoci(['unpack', ...rootless, '--image', image, bundle]);
      const rootfs = path.join(bundle, 'rootfs');
      if (layer === 1) {
        await fs.mkdir(path.join(rootfs, 'bin'), { recursive: true });
        for (const d of ['etc', 'tmp', 'proc', 'sys', 'dev', 'root']) await fs.mkdir(path.join(rootfs, d), { recursive: true });
        await fs.chmod(path.join(rootfs, 'tmp'), 0o1777);
        await fs.copyFile('/bin/busybox', path.join(rootfs, 'bin/busybox'));
        await fs.chmod(path.join(rootfs, 'bin/busybox'), 0o755);
        for (const applet of BUSYBOX_APPLETS) await fs.symlink('busybox', path.join(rootfs, 'bin', applet));
        await fs.writeFile(path.join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
        await fs.writeFile(path.join(rootfs, 'etc/group'), 'root:x:0:\nnobody:x:65534:\n');
      } else {
        await fs.writeFile(path.join(rootfs, `layer-${layer}.txt`), `layer ${layer}\n`);
      }
      if (layer === layers) {
        for (const [file, content] of Object.entries(opts.extraFiles ?? {})) {
          const target = path.join(rootfs, file);
          await fs.mkdir(path.dirname(target), { recursive: true });
          await fs.writeFile(target, content);
        }
      }
      await umoci(['repack', '--image', image, '--history.created_by', `berth fixture layer ${layer}`, bundle]);
    }
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
  const configArgs = ['config', '--image', image, '--os', 'linux', '--architecture', opts.architecture ?? 'amd64', '--config.env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
  for (const e of opts.env ?? []) configArgs.push('--config.env', e);
  for (const c of opts.cmd ?? ['sh']) configArgs.push('--config.cmd', c);
  await umoci(configArgs);
  await umoci(['gc', '--layout', dir]);
  return { dir, tag, ref: image, manifestDigest: await layoutTagDigest(dir, tag) };
}

interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

async function readLayoutIndex(dir: string): Promise<{ schemaVersion: number; manifests: IndexEntry[] }> {
  return JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8'));
}

/** The digest a tag of an OCI layout points at. */
export async function layoutTagDigest(dir: string, tag: string): Promise<string> {
  const index = await readLayoutIndex(dir);
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`tag ${tag} not found in OCI layout ${dir}`);
  return entry.digest;
}

export interface MultiPlatformLayout extends BuiltLayout {
  /** The index digest (same as manifestDigest). */
  indexDigest: string;
  amd64: { digest: string; size: number };
  arm64: { digest: string; size: number };
  attestation: { digest: string; size: number };
}

/**
 * An OCI index with linux/amd64 and linux/arm64 busybox images (each with /platform holding its
 * architecture) plus an `unknown/unknown` attestation-like entry, tagged `tag` (default 'multi')
 * in `dir`. Push it with `pushImage(..., {all: true})`.
 */
export async function buildMultiPlatformLayout(dir: string, opts: { tag?: string } = {}): Promise<MultiPlatformLayout> {
  const tag = opts.tag ?? 'multi';
  const amd = await buildBusyboxLayout(dir, { tag: `${tag}-amd64`, architecture: 'amd64', extraFiles: { platform: 'amd64\n' } });
  const arm = await buildBusyboxLayout(dir, { tag: `${tag}-arm64`, architecture: 'arm64', extraFiles: { platform: 'arm64\n' } });
  // The attestation stand-in: a layerless image whose config says unknown/unknown, made by umoci.
  const attTag = `${tag}-attestation`;
  await umoci(['new', '--image', `${dir}:${attTag}`]);
  await umoci(['config', '--image', `${dir}:${attTag}`, '--os', 'unknown', '--architecture', 'unknown']);
  const index = await readLayoutIndex(dir);
  const entryOf = (t: string) => {
    const e = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === t);
    if (!e) throw new Error(`tag ${t} missing from ${dir}`);
    return { mediaType: e.mediaType, digest: e.digest, size: e.size };
  };
  const amdEntry = entryOf(amd.tag);
  const armEntry = entryOf(arm.tag);
  const attEntry = entryOf(attTag);
  const imageIndex = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { ...amdEntry, platform: { architecture: 'amd64', os: 'linux' } },
      { ...armEntry, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
      {
        ...attEntry,
        platform: { architecture: 'unknown', os: 'unknown' },
        annotations: {
          'vnd.docker.reference.digest': amdEntry.digest,
          'vnd.docker.reference.type': 'attestation-manifest',
        },
      },
    ],
  };
  const bytes = Buffer.from(JSON.stringify(imageIndex));
  const hex = crypto.createHash('sha256').update(bytes).digest('hex');
  await fs.writeFile(path.join(dir, 'blobs', 'sha256', hex), bytes);
  index.manifests = index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] !== tag);
  index.manifests.push({
    mediaType: 'application/vnd.oci.image.index.v1+json',
    digest: `sha256:${hex}`,
    size: bytes.length,
    annotations: { 'org.opencontainers.image.ref.name': tag },
  });
  await fs.writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
  return {
    dir,
    tag,
    ref: `${dir}:${tag}`,
    manifestDigest: `sha256:${hex}`,
    indexDigest: `sha256:${hex}`,
    amd64: { digest: amdEntry.digest, size: amdEntry.size },
    arm64: { digest: armEntry.digest, size: armEntry.size },
    attestation: { digest: attEntry.digest, size: attEntry.size },
  };
}

export interface Creds {
  user: string;
  password: string;
}

export interface PushOptions {
  /** Manifest format written to the registry (default: keep OCI). */
  format?: 'oci' | 'v2s2';
  creds?: Creds;
  /** Copy a whole index with every platform (`skopeo copy --all`). */
  all?: boolean;
}

/**
 * Push `source` (`DIR:TAG` of an OCI layout) to `registryHost/destRef` (`repo:tag`) with skopeo.
 * Returns the digest of the manifest (or index) as stored in the registry.
 */
export async function pushImage(source: string, registryHost: string, destRef: string, opts: PushOptions = {}): Promise<{ digest: string }> {
  const work = await makeTempDir('berth-push-');
  try {
    const digestFile = path.join(work, 'digest');
    const args = ['--insecure-policy', 'copy', '--quiet', '--dest-tls-verify=false', '--digestfile', digestFile];
    if (opts.format === 'v2s2') args.push('--format', 'v2s2');
    if (opts.format === 'oci') args.push('--format', 'oci');
    if (opts.all) args.push('--all');
    if (opts.creds) args.push('--dest-creds', `${opts.creds.user}:${opts.creds.password}`);
    else args.push('--dest-no-creds');
    args.push(`oci:${source}`, `docker://${registryHost}/${destRef}`);
    await run('skopeo', args);
    return { digest: (await fs.readFile(digestFile, 'utf8')).trim() };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** `skopeo inspect` of `HOST/REPO:TAG`; raw=true returns the manifest bytes as text. */
export async function skopeoInspect(imageRef: string, opts: { raw?: boolean; creds?: Creds } = {}): Promise<string> {
  const args = ['inspect', '--tls-verify=false'];
  if (opts.raw) args.push('--raw');
  if (opts.creds) args.push('--creds', `${opts.creds.user}:${opts.creds.password}`);
  else args.push('--no-creds');
  args.push(`docker://${imageRef}`);
  return run('skopeo', args);
}

/** Build a one-layer busybox image and push it: the usual first step of a registry test. */
export async function pushBusybox(registryHost: string, destRef: string, opts: BusyboxLayoutOptions & PushOptions = {}): Promise<{ digest: string; layout: BuiltLayout }> {
  const dir = await makeTempDir('berth-layout-');
  try {
    const layout = await buildBusyboxLayout(path.join(dir, 'layout'), opts);
    const { digest } = await pushImage(layout.ref, registryHost, destRef, opts);
    return { digest, layout: { ...layout, dir: '(removed)', ref: '(removed)' } };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
