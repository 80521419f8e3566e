// A TCP proxy between the browser and the server that can cut every open connection, to
// drop the live stream the way a flaky network does. It also notes each request's
// Last-Event-ID header and the first SSE event name of each response.
import net from 'node:net';

export async function startProxy(target) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  const requests = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client); sockets.add(upstream);
    let head = '';
    let firstEvent = null;
    const record = { lastEventId: null, firstEvent: null, path: null };
    client.on('data', (chunk) => {
      if (record.path === null) {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end >= 0) {
          record.path = head.split(' ')[1];
          const m = head.slice(0, end).match(/^last-event-id:\s*(.+)$/im);
          record.lastEventId = m ? m[1].trim() : null;
          requests.push(record);
        }
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (firstEvent === null) {
        const m = chunk.toString('latin1').match(/^event:\s*(\S+)/m);
        if (m) { firstEvent = m[1]; record.firstEvent = firstEvent; }
      }
      client.write(chunk);
    });
    const close = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on('error', close); upstream.on('error', close);
    client.on('close', close); upstream.on('close', close);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    /** Cuts every open connection, as a network failure would. */
    cut() { for (const s of sockets) s.destroy(); sockets.clear(); },
    stop() { this.cut(); return new Promise((r) => server.close(r)); },
  };
}
