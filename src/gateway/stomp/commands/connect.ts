import { RillError } from '../../../errors/index.js';
import type { EscapeMode, Frame } from '../../../protocol/stomp/index.js';
import type { CommandContext } from '../command-context.js';

const SUPPORTED_VERSIONS: EscapeMode[] = ['1.2', '1.1', '1.0'];

/** CONNECT and STOMP: negotiates the version and the heart-beats, then answers CONNECTED. */
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
  // Heart-beats arrived with STOMP 1.1; a 1.0 session has none.
  const clientSends = version === '1.0' ? 0 : Number(heartBeat[1]);
  const clientWants = version === '1.0' ? 0 : Number(heartBeat[2]);
  const { stomp, serverName } = context.services;
  const { sendMs, receiveMs } = stomp.heartbeat;
  const outgoing = sendMs > 0 && clientWants > 0 ? Math.max(sendMs, clientWants) : 0;
  const incoming = clientSends > 0 && receiveMs > 0 ? Math.max(clientSends, receiveMs) : 0;
  context.connected(version, { version, server: serverName, session: context.sessionId, 'heart-beat': `${sendMs},${receiveMs}` }, outgoing, incoming);
}
