import { asRillError } from '../../../errors/index.js';
import type { Frame } from '../../../protocol/stomp/index.js';
import type { CommandContext } from '../command-context.js';

/**
 * A SEND to `/session/token`: the body is a fresh JSON Web Token for the connection's user, which
 * replaces the one it connected with (its expiry and roles) before that expires. Answered with a
 * RECEIPT; a token that is not valid, or names another user, is an ERROR, and the connection closes.
 */
export function handleTokenRefresh(context: CommandContext, frame: Frame): void {
  const later = context.later(frame.headers.receipt);
  const { rights, remoteAddress } = context;
  context.services.security.refreshToken(rights.principal, frame.body.toString('utf8').trim(), remoteAddress).then(
    (principal) => {
      // The connection is ending meanwhile: the RECEIPT still takes its turn, so the ERROR behind it is not held up.
      if (context.isConnected) context.renewPrincipal(principal);
      later.receipt();
    },
    (error: unknown) => later.fail(asRillError(error)),
  );
}
