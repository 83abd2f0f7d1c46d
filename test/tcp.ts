// Whether something accepts TCP connections on a port: the real-daemon tests (coturn, the streaming ingest) wait for
// their daemons with it, and check that a port is closed.
import * as net from "net";

export function tcpOpen(port: number, host = "127.0.0.1"): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = net.connect({ host, port, timeout: 500 });
        socket.once("connect", () => {
            socket.destroy();
            resolve(true);
        });
        socket.once("timeout", () => {
            socket.destroy();
            resolve(false);
        });
        socket.once("error", () => resolve(false));
    });
}
