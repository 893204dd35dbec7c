/**
 * The DNS responder berthd runs on a user-defined network's gateway address (port 53/udp).
 * It answers A queries for the names of containers on that network (container name, aliases,
 * short id) and nothing else: every other question gets NXDOMAIN (a name it does not know) or
 * REFUSED (not a standard query). It forwards nothing anywhere.
 */
import * as dgram from 'node:dgram';

const TYPE_A = 1;
const CLASS_IN = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_REFUSED = 5;

export class DnsResponder {
  private socket?: dgram.Socket;

  /** `lookup(name, from)` returns the IPv4 addresses of a lower-case name asked by `from`, or undefined when unknown. */
  constructor(
    private readonly address: string,
    private readonly lookup: (name: string, from: string) => string[] | undefined,
  ) {}

  async start(): Promise<void> {
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    socket.on('message', (msg, rinfo) => {
      const reply = this.answer(msg, rinfo.address);
      if (reply) socket.send(reply, rinfo.port, rinfo.address);
    });
    socket.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(53, this.address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.socket = socket;
  }

  async stop(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** The reply to one query packet, or undefined for packets not worth an answer. */
  answer(msg: Buffer, from = ''): Buffer | undefined {
    if (msg.length < 12) return undefined;
    const flags = msg.readUInt16BE(2);
    if (flags & 0x8000) return undefined; // a response, not a query
    const opcode = (flags >> 11) & 0xf;
    const qdcount = msg.readUInt16BE(4);
    const header = (rcode: number, ancount: number, qd: number) => {
      const h = Buffer.alloc(12);
      msg.copy(h, 0, 0, 2);
      // QR, opcode, AA, RD copied, RA off: this server answers authoritatively for its own names only.
      h.writeUInt16BE(0x8000 | (opcode << 11) | 0x0400 | (flags & 0x0100) | rcode, 2);
      h.writeUInt16BE(qd, 4);
      h.writeUInt16BE(ancount, 6);
      return h;
    };
    if (opcode !== 0 || qdcount !== 1) return header(RCODE_REFUSED, 0, 0);
    // The question: labels up to a zero byte (no compression in questions), then type and class.
    const labels: string[] = [];
    let off = 12;
    for (;;) {
      if (off >= msg.length) return header(RCODE_REFUSED, 0, 0);
      const len = msg[off];
      if (len === 0) {
        off++;
        break;
      }
      if (len > 63 || off + 1 + len > msg.length) return header(RCODE_REFUSED, 0, 0);
      labels.push(msg.subarray(off + 1, off + 1 + len).toString('latin1'));
      off += 1 + len;
    }
    if (off + 4 > msg.length) return header(RCODE_REFUSED, 0, 0);
    const qtype = msg.readUInt16BE(off);
    const qclass = msg.readUInt16BE(off + 2);
    const question = msg.subarray(12, off + 4);
    const addresses = qclass === CLASS_IN ? this.lookup(labels.join('.').toLowerCase(), from) : undefined;
    if (!addresses) return Buffer.concat([header(RCODE_NXDOMAIN, 0, 1), question]);
    // A known name asked for another type (AAAA ...): no error, no answers ("NODATA").
    const answers = qtype === TYPE_A ? addresses : [];
    const records = answers.map((ip) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // pointer to the name in the question
      rr.writeUInt16BE(TYPE_A, 2);
      rr.writeUInt16BE(CLASS_IN, 4);
      rr.writeUInt32BE(600, 6);
      rr.writeUInt16BE(4, 10);
      ip.split('.').forEach((p, i) => (rr[12 + i] = Number(p)));
      return rr;
    });
    return Buffer.concat([header(0, records.length, 1), question, ...records]);
  }
}
