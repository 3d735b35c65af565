// API keys the workerd tests configure: the first for most tests, the second only for the rate-limit test, the last two
// for the job-list tenancy test (two tenants of their own, so its calls do not eat the others' rate limit).
export const WORKERD_TEST_KEYS = [
  'edge-workerd-key-main-0123456789',
  'edge-workerd-key-rate-0123456789',
  'edge-workerd-key-list-a-0123456789',
  'edge-workerd-key-list-b-0123456789',
];
