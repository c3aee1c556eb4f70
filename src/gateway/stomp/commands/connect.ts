import { asRillError, RillError } from '../../../errors/index.js';
import type { EscapeMode, Frame } from '../../../protocol/stomp/index.js';
import type { Principal } from '../../../security/index.js';
import type { CommandContext } from '../command-context.js';

const SUPPORTED_VERSIONS: EscapeMode[] = ['1.2', '1.1', '1.0'];

/**
 * CONNECT and STOMP: negotiates the version and the heart-beats, checks the credentials (`login`
 * and `passcode`, or a token as the passcode), then answers CONNECTED. Frames after CONNECT wait
 * while the credentials are checked; bad ones get an ERROR that says only "bad credentials".
 */
export function handleConnect(context: CommandContext, frame: Frame): void {
  if (context.isConnected) {
    context.fail(new RillError('unexpected-frame', 'already connected: CONNECT may only be the first frame'), frame.headers.receipt);
    return;
  }
  const offered = (frame.headers['accept-version'] ?? '1.0').split(',').map((v) => v.trim());
  const version = SUPPORTED_VERSIONS.find((v) => offered.includes(v));
  if (version === undefined) {
    context.fail(
      new RillError('unsupported-version', `no common STOMP version: this server speaks 1.0, 1.1 and 1.2, the client offered ${offered.join(',')}`),
      frame.headers.receipt,
      { body: 'Supported protocol versions are 1.0 1.1 1.2', headers: { version: '1.0,1.1,1.2' } },
    );
    return;
  }
  const heartBeat = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(frame.headers['heart-beat'] ?? '0,0');
  if (heartBeat === null) {
    context.fail(new RillError('invalid-request', `invalid heart-beat header "${frame.headers['heart-beat']}": expected two numbers, "cx,cy"`));
    return;
  }
  const { stomp, serverName } = context.services;
  const { sendMs, receiveMs, maxMs } = stomp.heartbeat;
  // Heart-beats arrived with STOMP 1.1; a 1.0 session has none.
  const clientSends = version === '1.0' ? 0 : clampInterval(heartBeat[1], maxMs);
  const clientWants = version === '1.0' ? 0 : clampInterval(heartBeat[2], maxMs);
  const outgoing = sendMs > 0 && clientWants > 0 ? Math.max(sendMs, clientWants) : 0;
  const incoming = clientSends > 0 && receiveMs > 0 ? Math.max(clientSends, receiveMs) : 0;
  const headers = { version, server: serverName, session: context.sessionId, 'heart-beat': `${sendMs},${receiveMs}` };
  const receipt = frame.headers.receipt;
  let principal: Principal | Promise<Principal>;
  // A reload while the credentials are checked is caught up with once they are.
  const generation = context.services.security.generation;
  try {
    principal = context.services.security.authenticate({
      login: frame.headers.login,
      passcode: frame.headers.passcode,
      remote: context.remoteAddress,
      certificate: context.certificateSubject,
    });
  } catch (error) {
    context.fail(asRillError(error), receipt);
    return;
  }
  if (!(principal instanceof Promise)) {
    context.connected(version, headers, outgoing, incoming, principal, generation);
    return;
  }
  context.holdFrames(
    principal.then(
      (proven) => context.connected(version, headers, outgoing, incoming, proven, generation),
      (error: unknown) => context.fail(asRillError(error), receipt),
    ),
  );
}

/**
 * A client's heart-beat interval, at most `maxMs`: a longer one (or one past the safe integers)
 * would overflow a timer, which Node then fires every millisecond.
 */
function clampInterval(digits: string | undefined, maxMs: number): number {
  const ms = Number(digits ?? '0');
  return Number.isSafeInteger(ms) && ms <= maxMs ? ms : maxMs;
}
