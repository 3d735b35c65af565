// API keys the workerd tests configure: the first for most tests, the second only for the rate-limit test.
export const WORKERD_TEST_KEYS = ['edge-workerd-key-main-0123456789', 'edge-workerd-key-rate-0123456789'];
