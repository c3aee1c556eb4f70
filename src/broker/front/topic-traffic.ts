/** Messages and bytes that went one way for one topic, since the broker started. */
export interface TrafficCounter {
  messages: number;
  bytes: number;
}

/**
 * Per-topic counters that the delivery paths add to as they hand records out (a field increment
 * per message, nothing more), and that metrics read when scraped.
 */
export class TopicTraffic {
  private readonly byTopic = new Map<string, TrafficCounter>();

  /** The topic's counter, made on first use: take it once (per subscription, per pull), then add to it. */
  of(topic: string): TrafficCounter {
    let counter = this.byTopic.get(topic);
    if (counter === undefined) this.byTopic.set(topic, (counter = { messages: 0, bytes: 0 }));
    return counter;
  }

  entries(): IterableIterator<[string, TrafficCounter]> {
    return this.byTopic.entries();
  }
}
