// Whether a local port is taken: the dev stack checks its ports before starting, its test that they are freed after.
import { createServer } from 'node:net';

/** True when something already listens on 127.0.0.1:port (then a health check would reach it, not us). */
export function portTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(true));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(false)));
  });
}
