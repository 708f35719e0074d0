// k6 load for event ingest. Environment:
//   BASE_URL, API_KEY       where to send, and the organization's key
//   ENDPOINT                "single" (POST /api/v1/events) or "batch" (POST /api/v1/events/batch)
//   BATCH                   events per batch request (default 100)
//   VUS, DURATION           closed model: VUS clients sending back to back (finds the maximum)
//   RATE                    open model instead: RATE requests per second (for latency at a given load)
//   RUN                     a run id, so transaction ids never repeat across runs
import http from 'k6/http';
import { check } from 'k6';

const endpoint = __ENV.ENDPOINT || 'single';
const batch = parseInt(__ENV.BATCH || '100');
const run = __ENV.RUN || `${Date.now()}`;
const url = `${__ENV.BASE_URL}/api/v1/events${endpoint === 'batch' ? '/batch' : ''}`;
const params = { headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${__ENV.API_KEY}` } };

export const options = __ENV.RATE
  ? {
      scenarios: {
        open: {
          executor: 'constant-arrival-rate',
          rate: parseInt(__ENV.RATE),
          timeUnit: '1s',
          duration: __ENV.DURATION || '15s',
          preAllocatedVUs: parseInt(__ENV.VUS || '64'),
          maxVUs: parseInt(__ENV.VUS || '64') * 4,
        },
      },
      summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
    }
  : { vus: parseInt(__ENV.VUS || '16'), duration: __ENV.DURATION || '15s', summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'] };

// Bodies are built by string concatenation: k6's JavaScript is the load generator's main cost, and building
// objects for JSON.stringify roughly halves the rate one core of k6 can offer.
const tail = `", "code": "api_calls", "properties": {"gb": "12.5", "region": "eu-west-1", "operation": "write"}, "timestamp": `;

function event(id, sub, now) {
  return `{"transaction_id": "${id}", "external_subscription_id": "${sub}${tail}${now}}`;
}

export default function () {
  const base = `${run}-${__VU}-${__ITER}`;
  const sub = `sub_${__VU % 500}`;
  const now = Math.floor(Date.now() / 1000);
  let body;
  if (endpoint === 'batch') {
    const events = [];
    for (let i = 0; i < batch; i++) events.push(event(`${base}-${i}`, sub, now));
    body = `{"events": [${events.join(',')}]}`;
  } else {
    body = `{"event": ${event(base, sub, now)}}`;
  }
  const res = http.post(url, body, params);
  check(res, { 'status 200': (r) => r.status === 200 });
}
