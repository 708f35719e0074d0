// k6 load for event ingest. Responses are read but not kept (only their status is checked), which spares the
// load generator's CPU on the machine it shares with the server. Environment:
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
      discardResponseBodies: true,
    }
  : { discardResponseBodies: true, vus: parseInt(__ENV.VUS || '16'), duration: __ENV.DURATION || '15s', summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'] };

// Bodies are built from a template split at the transaction-id slots and joined with the request's id prefix:
// k6's JavaScript is the load generator's main cost, on the same cores as the server, and one native `join` per
// request costs far less than building a hundred strings (or objects for JSON.stringify) in script.
const tail = `", "code": "api_calls", "properties": {"gb": "12.5", "region": "eu-west-1", "operation": "write"}, "timestamp": `;
const SLOT = '\u0000';

function event(id, sub, now) {
  return `{"transaction_id": "${id}", "external_subscription_id": "${sub}${tail}${now}}`;
}

// Per client: the body with SLOT where each transaction id's prefix goes, split once; rebuilt when the second
// changes (the timestamp is part of it).
let cached = { now: -1, parts: null };

function parts(sub, now) {
  if (cached.now !== now) {
    let body;
    if (endpoint === 'batch') {
      const events = [];
      for (let i = 0; i < batch; i++) events.push(event(`${SLOT}-${i}`, sub, now));
      body = `{"events": [${events.join(',')}]}`;
    } else {
      body = `{"event": ${event(SLOT, sub, now)}}`;
    }
    cached = { now, parts: body.split(SLOT) };
  }
  return cached.parts;
}

export default function () {
  const sub = `sub_${__VU % 500}`;
  const now = Math.floor(Date.now() / 1000);
  const body = parts(sub, now).join(`${run}-${__VU}-${__ITER}`);
  const res = http.post(url, body, params);
  check(res, { 'status 200': (r) => r.status === 200 });
}
