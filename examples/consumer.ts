// A consumer like the seed's consumer.py, over the same HTTP calls: registers the group and the
// consumer, subscribes it to <topic>, then polls one message every <delay> seconds and
// acknowledges it (which commits the group's offset).
//   npx tsx examples/consumer.ts <consumer-name> <group> <topic> <delay-seconds> [http://127.0.0.1:8080]
const [consumerName, group, topic, delayText = '1', base = 'http://127.0.0.1:8080'] = process.argv.slice(2);
if (topic === undefined) {
  console.error('usage: npx tsx examples/consumer.ts <consumer-name> <group> <topic> <delay-seconds> [base-url]');
  process.exit(2);
}

async function post(path: string, body: object): Promise<Record<string, unknown>> {
  const response = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answer = (await response.json()) as Record<string, unknown>;
  if (!response.ok) throw new Error(`${path}: ${JSON.stringify(answer)}`);
  return answer;
}

await post('/consumer-group/add', { consumer_group_name: group });
await post('/consumer/register-consumer', { consumer_group_name: group, consumer_name: consumerName });
const subscribed = await post('/consumer/subscribe-topic', { consumer_name: consumerName, topic_list: topic });
console.log(`consumer ${consumerName} in group ${group}, assigned`, JSON.stringify(subscribed.assignment));

for (;;) {
  const message = await post('/consumer/poll', { consumer_name: consumerName });
  if (message.messageId !== null) {
    console.log('received', JSON.stringify(message));
    await post('/consumer/acknowledgement', { consumer_name: consumerName, message_id: message.messageId });
  } else {
    // Nothing now: polling keeps the membership alive; a heartbeat tells of reassignments.
    const view = await post('/consumer/heartbeat', { consumer_name: consumerName });
    console.log(`nothing to read; generation ${view.generation}, assigned`, JSON.stringify(view.assignment));
  }
  await new Promise((resolve) => setTimeout(resolve, Number(delayText) * 1000));
}
