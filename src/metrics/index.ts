export { BrokerMetrics } from './broker-metrics.js';
