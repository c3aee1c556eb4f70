/*
 * rill/client: a typed Rill client over STOMP on WebSocket, for browsers and Node 20. It imports
 * nothing but @stomp/stompjs, so that it bundles for the browser as it is; in Node, pass
 * `WebSocket` from the `ws` package (Node 20 has no global one).
 */
export type { BrokerErrorCode, ClientErrorCode, RillErrorCode } from './errors.js';
export { RillError } from './errors.js';
export type { GroupSubscribeOptions } from './group-subscription.js';
export type { GroupMessage, Message, PulledRecord } from './messages.js';
export type { ClientOptions, ConnectionState, WebSocketConstructor, WebSocketLike } from './options.js';
export type { PublishOptions, PublishResult } from './producer.js';
export type { CommitOffset, PullConsumer, PullConsumerOptions, PullOptions } from './pull-consumer.js';
export { connect, RillClient } from './rill-client.js';
export type { Subscription } from './subscription.js';
export type { TailOptions, TailStart } from './tail.js';
export type { MemberView, TopicPartition } from './wire.js';
