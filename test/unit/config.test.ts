// The serve flags: defaults, environment fallbacks, and refusals that name the flag; the shared parsers.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { PassThrough } from 'node:stream';
import { mountCommand } from '../../src/commands/mount.js';
import { ConfigError, CSMS_FLAGS, parseDuration, parseServeArgs, SERVE_FLAGS, SERVE_HELP } from '../../src/config.js';
import { absolutePath, optional, port, unixSocket } from '../../src/flags.js';

const base = ['--nodeid=n1', '--region=cn-north-4'];
const refuses = (args: string[], pattern: RegExp, env: NodeJS.ProcessEnv = {}) =>
  assert.throws(
    () => parseServeArgs(args, env),
    (e: Error) => e instanceof ConfigError && pattern.test(e.message),
  );

it('derives the CSMS endpoint from the region, with the .eu exception', () => {
  const c = parseServeArgs(base, {});
  assert.ok(c !== 'help');
  assert.equal(c.csmsEndpoint, 'https://kms.cn-north-4.myhuaweicloud.com');
  assert.equal(c.socket, '/csi/csi.sock');
  const eu = parseServeArgs(['--nodeid=n1', '--region=eu-west-101'], {});
  assert.ok(eu !== 'help' && eu.csmsEndpoint === 'https://kms.eu-west-101.myhuaweicloud.eu');
});

it('prefers an explicit endpoint and reads node, project and verbosity the klog way', () => {
  const c = parseServeArgs(['--csms-endpoint=http://127.0.0.1:9000', '-v=3', '--log-format-json'], {
    NODE_NAME: 'from-env',
    HUAWEICLOUD_SDK_PROJECT_ID: 'abc123',
  });
  assert.ok(c !== 'help');
  assert.deepEqual(
    [c.nodeId, c.csmsEndpoint, c.projectId, c.verbosity, c.logJson],
    ['from-env', 'http://127.0.0.1:9000', 'abc123', 3, true],
  );
  assert.ok(Object.isFrozen(c));
});

it('refuses bad input, naming the flag', () => {
  refuses([...base, '--no-such-flag'], /Unknown option '--no-such-flag'/);
  refuses(['--region=cn-north-4'], /--nodeid is required/);
  refuses(['--nodeid=n1'], /set --region .* or --csms-endpoint/);
  refuses(['--nodeid=n1', '--region=north'], /--region "north" does not look like a Huawei Cloud region/);
  refuses(
    [...base, '--endpoint=/csi/csi.sock'],
    /--endpoint "\/csi\/csi.sock" must look like unix:\/\/\/csi\/csi.sock/,
  );
  refuses([...base, '--csms-endpoint=kms.example'], /--csms-endpoint "kms.example" must be an http\(s\) URL/);
  refuses([...base, '-v=high'], /-v "high" must be a whole number/);
  refuses([...base, '--csms-timeout=5'], /--csms-timeout "5" is not a duration/);
});

it('refuses plain http to another machine unless plaintext is intended', () => {
  refuses(
    [...base, '--csms-endpoint=http://10.0.0.8:8443'],
    /--csms-endpoint "http:\/\/10\.0\.0\.8:8443" is plain http to another machine; use https, or pass --allow-plaintext-endpoints/,
  );
  refuses(
    [...base, '--metadata-endpoint=http://metadata.internal'],
    /--metadata-endpoint .* is plain http to another machine/,
  );
  for (const ok of [
    ['--csms-endpoint=http://127.0.0.1:9'],
    ['--csms-endpoint=http://[::1]:9'],
    ['--metadata-endpoint=http://169.254.169.254'],
    ['--csms-endpoint=http://10.0.0.8', '--allow-plaintext-endpoints'],
  ]) {
    assert.notEqual(parseServeArgs([...base, ...ok], {}), 'help');
  }
});

it('takes the kubelet root and the CSMS reply limit', () => {
  const c = parseServeArgs(
    [...base, '--kubelet-root-dir=/mnt/paas/kubernetes/kubelet/', '--csms-max-response-bytes=2048'],
    {},
  );
  assert.ok(c !== 'help');
  assert.deepEqual([c.kubeletRoot, c.csmsMaxResponseBytes], ['/mnt/paas/kubernetes/kubelet', 2048]);
  const d = parseServeArgs(base, {});
  assert.ok(d !== 'help' && d.kubeletRoot === '/var/lib/kubelet' && d.csmsMaxResponseBytes === 1048576);
  refuses(
    [...base, '--kubelet-root-dir=relative/kubelet'],
    /--kubelet-root-dir "relative\/kubelet" must be an absolute path/,
  );
  refuses([...base, '--kubelet-root-dir=//'], /--kubelet-root-dir "\/\/" must be kubelet's --root-dir, not \//);
});

it('parses durations', () => {
  assert.equal(parseDuration('--x', '1500ms'), 1500);
  assert.equal(parseDuration('--x', '2m'), 120_000);
  assert.throws(() => parseDuration('--x', '2min'), /--x "2min" is not a duration/);
});

it('checks the CSMS flags of `mount` with the same rules as `serve`', async () => {
  const sink = new PassThrough();
  for (const [flag, pattern] of [
    ['--region=north', /--region "north" does not look like a Huawei Cloud region/],
    ['--project-id=not/an/id', /--project-id "not\/an\/id" must be the project's id/],
    ['--csms-timeout=5', /--csms-timeout "5" is not a duration/],
  ] as const) {
    await assert.rejects(mountCommand(['--spc=x.yaml', '--dry-run', flag], sink), pattern);
    refuses([...base, flag], pattern);
  }
});

it('documents every flag of the table in the help, with its default and environment variable', () => {
  for (const f of Object.values({ ...SERVE_FLAGS, ...CSMS_FLAGS })) {
    assert.ok(SERVE_HELP.includes(`--${f.name}`), `--${f.name} is in serve --help`);
  }
  assert.match(SERVE_HELP, /--rotation-poll-interval DURATION +rotation period.*\(default 2m\)/);
  assert.match(SERVE_HELP, /--nodeid NAME +this node's name \(\$NODE_NAME\)/);
});

it('parses the path, socket and port forms every command shares, naming the flag', () => {
  const socket = unixSocket('unix:///csi/csi.sock');
  assert.equal(socket('unix:///csi/csi.sock', '--endpoint'), '/csi/csi.sock');
  for (const bad of ['/csi/csi.sock', 'unix://csi.sock', 'unix:///a/../b.sock', '', undefined]) {
    assert.throws(() => socket(bad, '--endpoint'), /--endpoint ".*" must look like unix:\/\/\/csi\/csi.sock/);
  }
  assert.throws(() => unixSocket('unix:///p/cce.sock', '.sock')('unix:///p/cce', '--endpoint'), /must look like/);
  assert.equal(absolutePath()('/var/lib/kubelet//', '--kubelet-root-dir'), '/var/lib/kubelet');
  for (const bad of ['relative', '/a/../b', '', undefined]) {
    assert.throws(() => absolutePath('x')(bad, '--p'), /--p ".*" must be an absolute path without "\.\." \(x\)/);
  }
  assert.equal(optional(absolutePath())('', '--p'), '');
  assert.equal(port()('9443', '--port'), 9443);
  assert.equal(port(true)('0', '--port'), 0);
  for (const bad of ['0', '65536', '-1', '9443x', '', undefined]) {
    assert.throws(() => port()(bad, '--port'), /--port ".*" must be a port number, 1-65535/);
  }
});

it('pod identity: off without --cluster-id, the CCE endpoint from the region, refused half-set', () => {
  const off = parseServeArgs(base, {});
  assert.ok(off !== 'help' && off.podIdentity === undefined);
  const on = parseServeArgs([...base, '--cluster-id=c0ffee-1'], {});
  assert.ok(on !== 'help');
  assert.deepEqual(on.podIdentity, {
    clusterId: 'c0ffee-1',
    cceEndpoint: 'https://cce.cn-north-4.myhuaweicloud.com',
    required: false,
  });
  const fromEnv = parseServeArgs([...base, '--require-pod-identity'], { CCE_CLUSTER_ID: 'c2' });
  assert.ok(fromEnv !== 'help' && fromEnv.podIdentity?.required === true && fromEnv.podIdentity.clusterId === 'c2');
  refuses([...base, '--require-pod-identity'], /--require-pod-identity needs --cluster-id/);
  refuses([...base, '--cluster-id=a/b'], /--cluster-id "a\/b" must be the CCE cluster's id/);
  refuses([...base, '--cluster-id=c', '--cce-endpoint=http://cce.example.com'], /--cce-endpoint .* is plain http/);
  refuses(
    ['--nodeid=n1', '--csms-endpoint=https://kms.x', '--cluster-id=c'],
    /--cce-endpoint so that pod identity knows where CCE is/,
  );
});
