/**
 * The hostile packet classes: for each, a fast-check generator of cases (bytes built by hand in
 * Wire.ts) and the answers the MQTT 3.1.1 / 5.0 specs allow, with the clause that says so.
 *
 * Conventions the expectations rely on:
 * - "pre" cases are the first bytes on a fresh connection; "post" cases follow a valid CONNECT
 *   that got CONNACK 0 (the probe sends it; `connectFirst`).
 * - A malformed packet or protocol error after CONNECT closes the connection (MQTT-4.8.0-1,
 *   v5 §4.13.1). For MQTT 5 the spec says the server SHOULD send DISCONNECT with the reason
 *   first; this broker promises it (README "DISCONNECT both ways"), so a silent close of a 5.0
 *   connection counts as a deviation. 0x81 and 0x82 are both accepted wherever the spec leaves
 *   room to argue which one applies, plus the more specific code where one exists.
 * - A malformed CONNECT is closed; for 5.0 a CONNACK 0x81/0x82 first is allowed (v5 §4.13.1
 *   "MAY send a CONNACK"), for 3.1.1 it is not (MQTT-3.1.4-1, MQTT-3.2.2-6: no CONNACK when no
 *   return code applies). A well-formed CONNECT is never closed without a CONNACK.
 */
import * as fc from "fast-check"
import {
  type Answer,
  anyWellFormed,
  closes,
  connack,
  disconnect,
  type Expectation,
  packetOf,
  refusingConnack,
  staysUp
} from "./Answers.ts"
import * as Wire from "./Wire.ts"
import { PropId, prop, type Version } from "./Wire.ts"

/** The broker limits the generators aim just above (must match how the broker under test was started). */
export interface FuzzEnv {
  readonly maxPacketSize: number
  readonly topicAliasMaximum: number
  readonly maxClientIdLength: number
  readonly connectTimeoutMs: number
  /** How long a probe waits for an answer or a close. */
  readonly waitMs: number
}

/** One hostile connection: what to send and what may come back. */
export interface Case {
  readonly cls: string
  /** The sub-kind, e.g. "SUBSCRIBE flags 0x0". */
  readonly variant: string
  readonly version: Version
  /** Post-CONNECT cases: the probe first connects validly (with a will on `fuzz/will/<clientId>` if asked). */
  readonly connectFirst?: { readonly will: boolean }
  readonly bytes: Buffer
  /** Truncated frames: the probe ends its side right after sending (the broker cannot know nothing more comes). */
  readonly endAfterSend?: boolean
  /** Stays-up answers: packet types that complete the answer (a PINGREQ then checks the connection). */
  readonly replyTypes?: ReadonlyArray<number>
  /** Cases where the broker may legitimately stay silent and open: the probe stops waiting then. */
  readonly mayStayOpen?: boolean
  readonly waitMs: number
  readonly expect: Expectation
}

/** A class of hostile input. */
export interface FuzzClass {
  readonly name: string
  readonly summary: string
  readonly arbitrary: (env: FuzzEnv) => fc.Arbitrary<Case>
}

// ---------------------------------------------------------------------------
// shared pieces
// ---------------------------------------------------------------------------

const MALFORMED = 0x81
const PROTOCOL_ERROR = 0x82

const v4v5 = fc.constantFrom<Version>(4, 5)
const clientIdArb = fc.integer({ min: 0, max: 0x7fffffff }).map((n) => `fz${n.toString(36)}`)
const packetIdArb = fc.integer({ min: 1, max: 0xffff })
const bytesArb = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a))
const validTopicArb = fc.constantFrom("fuzz/t/a", "fuzz/t/b/c", "fuzz/t/é", "fuzz/t/日本", "fuzz/t/x y")
const validFilterArb = fc.constantFrom("fuzz/f/a", "fuzz/f/+", "fuzz/f/#", "fuzz/f/+/b", "+/fuzz-f")

/** A CONNECT every broker must accept. */
const validConnect = (version: Version, clientId: string): Buffer => Wire.connect({ version, clientId })

/** Ill-formed UTF-8 (MQTT-1.5.3-1 / v5 MQTT-1.5.4-1) and U+0000 (MQTT-1.5.3-2 / v5 MQTT-1.5.4-2). */
const BAD_UTF8: ReadonlyArray<readonly [string, ReadonlyArray<number>]> = [
  ["U+0000", [0x00]],
  ["byte FF", [0xff]],
  ["byte FE", [0xfe]],
  ["lone continuation 80", [0x80]],
  ["overlong U+0000 C0 80", [0xc0, 0x80]],
  ["overlong '/' C0 AF", [0xc0, 0xaf]],
  ["overlong E0 80 AF", [0xe0, 0x80, 0xaf]],
  ["surrogate U+D800 ED A0 80", [0xed, 0xa0, 0x80]],
  ["surrogate U+DFFF ED BF BF", [0xed, 0xbf, 0xbf]],
  ["above U+10FFFF F4 90 80 80", [0xf4, 0x90, 0x80, 0x80]],
  ["5-byte form F8 88 80 80 80", [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ["truncated E2 82", [0xe2, 0x82]]
]

/** A string field holding one bad sequence somewhere: its label and bytes. */
const badUtf8Arb = (prefixes: ReadonlyArray<string>) =>
  fc.tuple(fc.constantFrom(...prefixes), fc.constantFrom(...BAD_UTF8), fc.constantFrom("", "/x", "z")).map(([prefix, [label, bad], suffix]) => ({
    label,
    bytes: Buffer.concat([Buffer.from(prefix), Buffer.from(bad), Buffer.from(suffix)]),
    isNull: label === "U+0000"
  }))

const utf8Clause = (isNull: boolean, version: Version) =>
  version === 5 ? (isNull ? "v5 MQTT-1.5.4-2 (U+0000: malformed)" : "v5 MQTT-1.5.4-1 (ill-formed UTF-8: malformed)") : isNull
  ? "MQTT-1.5.3-2 (U+0000: close)"
  : "MQTT-1.5.3-1 (ill-formed UTF-8: close)"

/** A malformed CONNECT: close; MQTT 5 may send CONNACK with one of `v5Codes` first (v5 §4.13.1). */
const malformedConnect = (version: Version, clause: string, v5Codes: ReadonlyArray<number> = [MALFORMED, PROTOCOL_ERROR]): Expectation => ({
  clause,
  allowed: version === 5 ? [closes(), closes(connack(v5Codes, 5))] : [closes()]
})

/** A malformed packet / protocol error after CONNECT: close; MQTT 5 gets DISCONNECT with one of `v5Codes` first. */
const violation = (version: Version, clause: string, v5Codes: ReadonlyArray<number> = [MALFORMED, PROTOCOL_ERROR]): Expectation => ({
  clause,
  allowed: version === 5 ? [closes(disconnect(v5Codes))] : [closes()]
})

/** Anything before CONNECT that is not a CONNECT: close, nothing sent (MQTT-3.1.0-1). */
const closedUnanswered = (clause: string): Expectation => ({ clause, allowed: [closes()] })

interface CaseFields {
  readonly variant: string
  readonly version: Version
  readonly bytes: Buffer
  readonly expect: Expectation
  readonly post?: boolean
  readonly will?: boolean
  readonly endAfterSend?: boolean
  readonly replyTypes?: ReadonlyArray<number>
  readonly mayStayOpen?: boolean
  readonly waitMs?: number
}

const makeCase = (cls: string, env: FuzzEnv, f: CaseFields): Case => ({
  cls,
  variant: f.variant,
  version: f.version,
  ...(f.post === true ? { connectFirst: { will: f.will === true } } : {}),
  bytes: f.bytes,
  ...(f.endAfterSend === true ? { endAfterSend: true } : {}),
  ...(f.replyTypes !== undefined ? { replyTypes: f.replyTypes } : {}),
  ...(f.mayStayOpen === true ? { mayStayOpen: true } : {}),
  waitMs: f.waitMs ?? env.waitMs,
  expect: f.expect
})

const defineClass = (
  name: string,
  summary: string,
  arbitrary: (env: FuzzEnv, make: (f: CaseFields) => Case) => fc.Arbitrary<Case>
): FuzzClass => ({ name, summary, arbitrary: (env) => arbitrary(env, (f) => makeCase(name, env, f)) })

const hex = (n: number): string => `0x${n.toString(16).padStart(2, "0")}`

// ---------------------------------------------------------------------------
// framing
// ---------------------------------------------------------------------------

const remainingLengthOverlong = defineClass(
  "remaining-length-5-bytes",
  "Remaining Length with the continuation bit set on its 4th byte (5 length bytes)",
  (_env, make) =>
    fc.record({
      version: v4v5,
      post: fc.boolean(),
      first: fc.constantFrom(0x10, 0x30, 0x32, 0x82, 0xa2, 0xc0, 0x62),
      length: fc.tuple(bytesArb(4, 4), fc.integer({ min: 0, max: 255 })),
      tail: bytesArb(0, 8)
    }).map(({ first, length: [four, fifth], post, tail, version }) =>
      make({
        variant: `${post ? "after" : "before"} CONNECT, first byte ${hex(first)}`,
        version,
        post,
        bytes: Buffer.concat([Buffer.from([first]), Buffer.from(four.map((b) => b | 0x80)), Buffer.from([fifth]), tail]),
        expect: post
          ? violation(version, "MQTT-2.2.3 (at most 4 length bytes), MQTT-4.8.0-1 / v5 §1.5.5, §4.13.1 0x81", [MALFORMED])
          : closedUnanswered("MQTT-2.2.3, MQTT-4.8.0-1 / v5 §1.5.5 (malformed before CONNECT: close)")
      })
    )
)

const truncatedFrame = defineClass(
  "truncated-frame",
  "header announces more than is sent, then the socket ends (a following packet is swallowed by it)",
  (_env, make) =>
    fc.record({
      version: v4v5,
      post: fc.boolean(),
      follower: fc.boolean(),
      extra: fc.integer({ min: 1, max: 300 }),
      cut: fc.integer({ min: 0, max: 100 }),
      clientId: clientIdArb,
      topic: validTopicArb
    }).map(({ clientId, cut, extra, follower, post, topic, version }) => {
      // the whole packet, its body cut short, then (maybe) a valid packet the announced length swallows
      const whole = post
        ? Wire.publish({ version, topic, qos: 1, packetId: 7, payload: Buffer.from("truncated") })
        : validConnect(version, clientId)
      const body = whole.subarray(2) // every packet here is < 128 bytes: one length byte
      const next = follower ? (post ? Wire.PINGREQ : validConnect(version, `${clientId}n`)) : Buffer.alloc(0)
      const sent = follower ? body : body.subarray(0, Math.min(cut, body.length - 1))
      const bytes = Buffer.concat([Wire.packet(whole[0]!, sent, body.length + (follower ? next.length + extra : 0)), next])
      return make({
        variant: `${post ? "PUBLISH after" : "CONNECT before"} CONNECT${follower ? `, then a ${post ? "PINGREQ" : "CONNECT"} inside the announced length` : ", cut short"}`,
        version,
        post,
        bytes,
        endAfterSend: true,
        // the broker cannot answer a packet it never received whole, nor the one swallowed inside it
        expect: {
          clause: "MQTT-2.2.3 (Remaining Length counts the bytes that follow: the frame is incomplete, nothing in it may be answered)",
          allowed: version === 5 && post ? [closes(), closes(disconnect([MALFORMED, PROTOCOL_ERROR]))] : [closes()]
        }
      })
    })
)

const oversize = defineClass(
  "oversize-packet",
  "a packet larger than the broker's maxPacketSize (header only, or sent whole)",
  (env, make) =>
    fc.record({
      version: v4v5,
      post: fc.boolean(),
      whole: fc.boolean(),
      over: fc.integer({ min: 1, max: 2048 }),
      sent: fc.integer({ min: 0, max: 64 })
    }).map(({ over, post, sent, version, whole }) => {
      const sendWhole = whole && post && env.maxPacketSize <= 1024 * 1024
      let bytes: Buffer
      if (sendWhole) {
        const topic = "fuzz/t/big"
        bytes = Wire.publish({ version, topic, qos: 0, payload: Buffer.alloc(env.maxPacketSize - topic.length + over, 0x61) })
      } else {
        // a header announcing more than the limit; the broker must refuse it from the header alone
        const announce = env.maxPacketSize + over
        bytes = Wire.packet(post ? 0x30 : 0x10, Buffer.alloc(Math.min(sent, announce), 0x61), announce)
      }
      return make({
        variant: `${post ? "PUBLISH after" : "CONNECT before"} CONNECT, ${sendWhole ? `${bytes.length} bytes sent whole` : "header only"}`,
        version,
        post,
        bytes,
        expect: post
          ? violation(version, "v5 §3.1.2.11.4 / §4.13.1 DISCONNECT 0x95 (Packet too large); 3.1.1: close", [0x95])
          : closedUnanswered("over the server's limit before CONNECT: close (v5 §3.1.2.11.4; the level is unknown from the header)")
      })
    })
)

const garbage = defineClass(
  "random-garbage",
  "random bytes (before CONNECT: never starting with a CONNECT; after: anything)",
  (env, make) =>
    fc.record({
      version: v4v5,
      post: fc.boolean(),
      first: fc.integer({ min: 0, max: 255 }).filter((b) => b !== 0x10),
      rest: bytesArb(0, 64)
    }).map(({ first, post, rest, version }) =>
      post
        ? make({
          variant: "after CONNECT",
          version,
          post,
          bytes: Buffer.concat([Buffer.from([first]), rest]),
          mayStayOpen: true,
          waitMs: 500,
          // random bytes may form valid packets: only well-formed answers are required (and no victims)
          expect: { clause: "MQTT-4.8.0-1 / v5 §4.13 (close on malformed; valid packets are served)", allowed: [anyWellFormed] }
        })
        : make({
          variant: `before CONNECT, first byte ${hex(first)}`,
          version,
          bytes: Buffer.concat([Buffer.from([first]), rest]),
          // an incomplete frame is closed by the connect timeout
          waitMs: env.connectTimeoutMs + env.waitMs,
          expect: closedUnanswered("MQTT-3.1.0-1 (first packet must be CONNECT), MQTT-4.8.0-1; incomplete: connect timeout")
        })
    )
)

// ---------------------------------------------------------------------------
// CONNECT
// ---------------------------------------------------------------------------

const badProtocolName = defineClass(
  "bad-protocol-name",
  "CONNECT whose protocol name is not MQTT (or MQIsdp with level 3)",
  (_env, make) =>
    fc.record({
      version: v4v5,
      name: fc.oneof(
        fc.constantFrom("hj", "MQTX", "mqtt", "MQT", "MQTTT", "", "MQIsdp", "MQTT\u0000"),
        fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 8 }).filter((s) => s !== "MQTT" && s !== "MQIsdp")
      ),
      clientId: clientIdArb
    }).map(({ clientId, name, version }) =>
      make({
        variant: `name ${JSON.stringify(name)}, level ${version}`,
        version,
        bytes: Wire.connect({ version, clientId, protocolName: name }),
        // the server MAY close with or without a CONNACK; it must not accept (MQTT-3.1.2-1)
        expect: {
          clause: "MQTT-3.1.2-1 (may close, must not accept) / v5 MQTT-3.1.2-1 (may send CONNACK 0x84)",
          allowed: [closes(), closes(refusingConnack)]
        }
      })
    )
)

const badProtocolLevel = defineClass(
  "bad-protocol-level",
  "CONNECT with name MQTT and a protocol level that is not 4 or 5",
  (_env, make) =>
    fc.record({
      layout: v4v5,
      // 0x83-0x85 are Mosquitto's bridge flag + a real level, a de-facto extension mqtt-packet accepts: left out
      level: fc.integer({ min: 0, max: 255 }).filter((l) => ![3, 4, 5, 0x83, 0x84, 0x85].includes(l)),
      clientId: clientIdArb
    }).map(({ clientId, layout, level }) =>
      make({
        variant: `level ${level} (${layout === 5 ? "5.0" : "3.1.1"} layout)`,
        version: layout,
        bytes: Wire.connect({ version: layout, clientId, level }),
        // 3.1.1 MUST answer CONNACK 0x01 then close; a 5.0 server MAY answer 0x84 (v5 form) instead
        expect: {
          clause: "MQTT-3.1.2-2 (CONNACK 0x01, then close) / v5 MQTT-3.1.2-2 (CONNACK 0x84)",
          allowed: [closes(connack([0x01], 3)), closes(connack([0x84], 5))]
        }
      })
    )
)

const connectFlags = defineClass(
  "connect-flags",
  "CONNECT with reserved flag bit 0 set, stray or invalid will bits, password without user name, or fixed-header flags",
  (_env, make) =>
    fc.record({
      version: v4v5,
      kind: fc.constantFrom("reserved", "will-qos-no-will", "will-retain-no-will", "will-qos-3", "password-no-user", "header-flags", "trailing-bytes"),
      headerFlags: fc.integer({ min: 1, max: 15 }),
      clientId: clientIdArb
    }).map(({ clientId, headerFlags, kind, version }) => {
      const v5 = version === 5
      const will = { topic: "fuzz/w/flags", payload: Buffer.from("w"), qos: 0, retain: false }
      const cases: Record<string, () => [Buffer, string]> = {
        "reserved": () => [Wire.connect({ version, clientId, extraFlags: 0x01 }), "MQTT-3.1.2-3 (reserved flag must be 0)"],
        "will-qos-no-will": () => [
          Wire.connect({ version, clientId, extraFlags: 0x08 }),
          v5 ? "v5 MQTT-3.1.2-11 (will flag 0: will QoS 0)" : "MQTT-3.1.2-13 (will flag 0: will QoS 0)"
        ],
        "will-retain-no-will": () => [
          Wire.connect({ version, clientId, extraFlags: 0x20 }),
          v5 ? "v5 MQTT-3.1.2-13 (will flag 0: will retain 0)" : "MQTT-3.1.2-15 (will flag 0: will retain 0)"
        ],
        "will-qos-3": () => [
          Wire.connect({ version, clientId, will: { ...will, qos: 3 } }),
          v5 ? "v5 MQTT-3.1.2-12 (will QoS 3 is malformed)" : "MQTT-3.1.2-14 (will QoS must not be 3)"
        ],
        "password-no-user": () =>
          // MQTT 5 allows a password without a user name; 3.1.1 does not
          v5 ? [Wire.connect({ version, clientId, extraFlags: 0x01 }), "MQTT-3.1.2-3"] : [Wire.connect({ version, clientId, password: "pw" }), "MQTT-3.1.2-22 (password flag needs the user name flag)"],
        "header-flags": () => [Wire.connect({ version, clientId, firstByte: 0x10 | headerFlags }), "MQTT-2.2.2-2 / v5 §2.1.3 (CONNECT fixed-header flags are 0000)"],
        "trailing-bytes": () => [
          Wire.packet(0x10, [validConnect(version, clientId).subarray(2), Buffer.from([0x00, 0x01, 0x78])]),
          "MQTT-3.1.4-1 / v5 §3.1.4 (bytes after the last payload field: the CONNECT does not conform)"
        ]
      }
      const [bytes, clause] = cases[kind]!()
      return make({ variant: kind === "header-flags" ? `${kind} ${hex(headerFlags)}` : kind, version, bytes, expect: malformedConnect(version, clause) })
    })
)

const clientIdRejected = defineClass(
  "client-id-rejected",
  "well-formed CONNECT with a client id the broker must refuse (too long, empty with clean=0 in 3.1.1, 3.1 rules)",
  (env, make) =>
    fc.record({
      version: fc.constantFrom<Version>(3, 4, 5),
      kind: fc.constantFrom("too-long", "empty-persistent"),
      extra: fc.integer({ min: 1, max: 200 })
    }).map(({ extra, kind, version }) => {
      // 3.1 allows 1–23 characters; 3.1.1 allows an empty id only with clean=1; 5.0 assigns one
      const tooLong = kind === "too-long" || version === 5
      const limit = version === 3 ? 23 : env.maxClientIdLength
      const clientId = tooLong ? "fz".padEnd(limit + extra, "x") : ""
      return make({
        variant: tooLong ? `${clientId.length} characters (limit ${limit})` : "empty, clean=0",
        version,
        bytes: Wire.connect({ version, clientId, clean: tooLong }),
        expect: version === 5
          ? { clause: "v5 MQTT-3.1.3-8 (CONNACK 0x85, then close)", allowed: [closes(connack([0x85], 5))] }
          : {
            clause: version === 3
              ? "3.1 §3.1 (client id 1–23 characters: CONNACK 0x02)"
              : tooLong
              ? "MQTT-3.1.3-9 (rejected client id: CONNACK 0x02, then close)"
              : "MQTT-3.1.3-8 (empty id with clean=0: CONNACK 0x02, then close)",
            allowed: [closes(connack([0x02], 3))]
          }
      })
    })
)

const badUtf8ClientId = defineClass(
  "utf8-client-id",
  "CONNECT whose client id holds ill-formed UTF-8 or U+0000",
  (_env, make) =>
    fc.record({ version: v4v5, bad: badUtf8Arb(["fz", "", "client-"]) }).map(({ bad, version }) =>
      make({
        variant: bad.label,
        version,
        bytes: Wire.connect({ version, clientId: bad.bytes }),
        // a malformed packet (close), or a rejected client id (CONNACK 2 / 0x85) — the spec supports both readings
        expect: {
          clause: `${utf8Clause(bad.isNull, version)}; or ${version === 5 ? "v5 MQTT-3.1.3-8 CONNACK 0x85 / §4.13.1 CONNACK 0x81" : "MQTT-3.1.3-9 CONNACK 0x02"}`,
          allowed: version === 5
            ? [closes(), closes(connack([0x85, MALFORMED], 5))]
            : [closes(), closes(connack([0x02], 3))]
        }
      })
    )
)

const badWillTopic = defineClass(
  "will-topic-invalid",
  "CONNECT whose will topic holds ill-formed UTF-8, U+0000 or a wildcard",
  (_env, make) =>
    fc.record({
      version: v4v5,
      bad: fc.oneof(
        badUtf8Arb(["fuzz/w/", ""]),
        fc.constantFrom("fuzz/w/+", "fuzz/w/#", "#", "+", "").map((t) => ({ label: `topic ${JSON.stringify(t)}`, bytes: Buffer.from(t), isNull: false }))
      ),
      clientId: clientIdArb
    }).map(({ bad, clientId, version }) => {
      const malformed = BAD_UTF8.some(([label]) => label === bad.label)
      const clause = malformed
        ? utf8Clause(bad.isNull, version)
        : "MQTT-3.3.2-2 / MQTT-4.7.3-1 (a will topic is a topic name); 3.1.1 has no CONNACK code for it: MQTT-3.2.2-6 close without CONNACK; v5 CONNACK 0x90"
      return make({
        variant: bad.label,
        version,
        bytes: Wire.connect({ version, clientId, will: { topic: bad.bytes, payload: Buffer.from("will"), qos: 0, retain: false } }),
        expect: malformedConnect(version, clause, [MALFORMED, PROTOCOL_ERROR, 0x90])
      })
    })
)

// ---------------------------------------------------------------------------
// after CONNECT
// ---------------------------------------------------------------------------

const reservedFlags = defineClass(
  "reserved-header-flags",
  "fixed-header flags other than the spec's (SUBSCRIBE/UNSUBSCRIBE/PUBREL not 0010, acks, PINGREQ, DISCONNECT not 0000)",
  (_env, make) =>
    fc.record({
      version: v4v5,
      type: fc.constantFrom("SUBSCRIBE", "UNSUBSCRIBE", "PUBREL", "PUBACK", "PUBREC", "PUBCOMP", "PINGREQ", "DISCONNECT"),
      flags: fc.integer({ min: 0, max: 15 }),
      packetId: packetIdArb
    }).map(({ flags, packetId, type, version }) => {
      const expected = type === "SUBSCRIBE" || type === "UNSUBSCRIBE" || type === "PUBREL" ? 2 : 0
      const bad = flags === expected ? flags ^ 0x08 : flags
      const builders: Record<string, () => Buffer> = {
        SUBSCRIBE: () => Wire.subscribe(version, packetId, [{ filter: "fuzz/f/a", options: 1 }], [], 0x80 | bad),
        UNSUBSCRIBE: () => Wire.unsubscribe(version, packetId, ["fuzz/f/a"], [], 0xa0 | bad),
        PUBREL: () => Wire.packet(0x60 | bad, Wire.u16(packetId)),
        PUBACK: () => Wire.packet(0x40 | bad, Wire.u16(packetId)),
        PUBREC: () => Wire.packet(0x50 | bad, Wire.u16(packetId)),
        PUBCOMP: () => Wire.packet(0x70 | bad, Wire.u16(packetId)),
        PINGREQ: () => Buffer.from([0xc0 | bad, 0x00]),
        DISCONNECT: () => Buffer.from([0xe0 | bad, 0x00])
      }
      return make({
        variant: `${type} flags ${bad.toString(2).padStart(4, "0")}`,
        version,
        post: true,
        bytes: builders[type]!(),
        expect: violation(version, "MQTT-2.2.2-2 (invalid flags: close) / v5 §2.1.3 (malformed 0x81)")
      })
    })
)

const publishQos3 = defineClass(
  "publish-qos-3",
  "PUBLISH with both QoS bits set",
  (_env, make) =>
    fc.record({ version: v4v5, dup: fc.boolean(), retain: fc.boolean(), topic: validTopicArb, packetId: packetIdArb }).map(
      ({ dup, packetId, retain, topic, version }) =>
        make({
          variant: `QoS 3${dup ? ", DUP" : ""}${retain ? ", RETAIN" : ""}`,
          version,
          post: true,
          bytes: Wire.publish({ version, topic, qos: 3, packetId, dup, retain, payload: Buffer.from("q3") }),
          expect: violation(version, "MQTT-3.3.1-4 (QoS 3: close) / v5 MQTT-3.3.1-4 (malformed 0x81)")
        })
    )
)

const badUtf8Topic = defineClass(
  "utf8-publish-topic",
  "PUBLISH whose topic holds ill-formed UTF-8 or U+0000",
  (_env, make) =>
    fc.record({ version: v4v5, bad: badUtf8Arb(["fuzz/t/", ""]), qos: fc.constantFrom(0, 1, 2) }).map(({ bad, qos, version }) =>
      make({
        variant: `${bad.label}, QoS ${qos}`,
        version,
        post: true,
        bytes: Wire.publish({ version, topic: bad.bytes, qos, packetId: 3, payload: Buffer.from("bad") }),
        expect: violation(version, utf8Clause(bad.isNull, version), [MALFORMED, PROTOCOL_ERROR, 0x90])
      })
    )
)

const badUtf8Filter = defineClass(
  "utf8-topic-filter",
  "SUBSCRIBE / UNSUBSCRIBE whose filter holds ill-formed UTF-8 or U+0000",
  (_env, make) =>
    fc.record({ version: v4v5, bad: badUtf8Arb(["fuzz/f/", "", "fuzz/+/"]), unsubscribe: fc.boolean(), packetId: packetIdArb }).map(
      ({ bad, packetId, unsubscribe, version }) =>
        make({
          variant: `${unsubscribe ? "UNSUBSCRIBE" : "SUBSCRIBE"} ${bad.label}`,
          version,
          post: true,
          bytes: unsubscribe
            ? Wire.unsubscribe(version, packetId, [bad.bytes])
            : Wire.subscribe(version, packetId, [{ filter: bad.bytes, options: 1 }]),
          // a malformed packet, not an invalid filter: no SUBACK failure code is allowed here
          expect: violation(version, utf8Clause(bad.isNull, version), [MALFORMED, PROTOCOL_ERROR, 0x8f])
        })
    )
)

const invalidTopicName = defineClass(
  "invalid-topic-name",
  "PUBLISH whose topic has a wildcard, or is empty (without a topic alias)",
  (_env, make) =>
    fc.record({
      version: v4v5,
      topic: fc.constantFrom("fuzz/+", "fuzz/#", "#", "+", "a/+/b", "fuzz/t#", "fuzz/t+", ""),
      qos: fc.constantFrom(0, 1, 2)
    }).map(({ qos, topic, version }) =>
      make({
        variant: `topic ${JSON.stringify(topic)}, QoS ${qos}`,
        version,
        post: true,
        bytes: Wire.publish({ version, topic, qos, packetId: 5, payload: Buffer.from("wild") }),
        expect: violation(
          version,
          topic === ""
            ? "MQTT-4.7.3-1 (topic at least one character) / v5 §3.3.2.3.4 (empty topic without alias: protocol error)"
            : "MQTT-3.3.2-2 (no wildcards in a topic name) / v5 MQTT-3.3.2-2, DISCONNECT 0x90",
          [MALFORMED, PROTOCOL_ERROR, 0x90]
        )
      })
    )
)

const INVALID_FILTERS = ["a#", "+a", "a/#/b", "#/a", "a+", "fuzz/b#", "fuzz/+x", "##", "++", "", "$share/g+/a", "$share/g#/a"]
/** `$share/g` and `$share//a` are plain valid filters in 3.1.1 but invalid shared subscriptions in 5.0 (v5 §4.8.2). */
const INVALID_FILTERS_V5 = [...INVALID_FILTERS, "$share/g", "$share//a", "$share/"]

const invalidTopicFilter = defineClass(
  "invalid-topic-filter",
  "SUBSCRIBE / UNSUBSCRIBE with an invalid filter among valid ones",
  (_env, make) =>
    v4v5.chain((version) =>
      fc.record({
        version: fc.constant(version),
        entries: fc.array(
          fc.record({
            invalid: fc.boolean(),
            filter: fc.constantFrom(...(version === 5 ? INVALID_FILTERS_V5 : INVALID_FILTERS)),
            valid: validFilterArb,
            qos: fc.constantFrom(0, 1, 2)
          }),
          { minLength: 1, maxLength: 3 }
        ),
        which: fc.nat(),
        unsubscribe: fc.boolean(),
        packetId: packetIdArb
      })
    ).map(({ entries, packetId, unsubscribe, version, which }) => {
      // at least one invalid filter
      const list = entries.map((e, i) => ({ filter: e.invalid || i === which % entries.length ? e.filter : e.valid, invalid: e.invalid || i === which % entries.length, qos: e.qos }))
      const failure = version === 5 ? 0x8f : 0x80
      const idMatches = (p: { packetId?: number }) => p.packetId === packetId
      const answerOk = unsubscribe
        ? packetOf(
          version === 5 ? "UNSUBACK with 0x8F or 0x11 for each invalid filter" : "UNSUBACK",
          11,
          // UNSUBSCRIBE compares filters character by character (MQTT-3.10.4-1): an invalid one matches no
          // subscription, so 0x11 No subscription existed is as right as 0x8F Topic Filter invalid
          (p) => idMatches(p) && (version !== 5 || (p.codes?.length === list.length && list.every((e, i) => (e.invalid ? p.codes![i] === 0x8f || p.codes![i] === 0x11 : p.codes![i] === 0x00 || p.codes![i] === 0x11))))
        )
        : packetOf(
          `SUBACK with ${hex(failure)} for each invalid filter`,
          9,
          (p) => idMatches(p) && p.codes?.length === list.length && list.every((e, i) => (e.invalid ? p.codes![i] === failure : p.codes![i]! <= e.qos))
        )
      const close: Answer = version === 5 ? closes(disconnect([0x8f, MALFORMED, PROTOCOL_ERROR])) : closes()
      return make({
        variant: `${unsubscribe ? "UNSUBSCRIBE" : "SUBSCRIBE"} ${JSON.stringify(list.map((e) => e.filter))}`,
        version,
        post: true,
        bytes: unsubscribe
          ? Wire.unsubscribe(version, packetId, list.map((e) => e.filter))
          : Wire.subscribe(version, packetId, list.map((e) => ({ filter: e.filter, options: e.qos }))),
        replyTypes: [unsubscribe ? 11 : 9],
        // either answer is allowed: a failure code for that filter (connection stays up), or a close
        expect: {
          clause: "MQTT-4.7.1-1/-2, MQTT-4.7.3-1 / v5 §4.7, §4.8.2; SUBACK 0x80 (3.1.1 §3.9.3) / 0x8F (v5 §3.9.3), or close (v5 DISCONNECT 0x8F)",
          allowed: [staysUp(answerOk), close]
        }
      })
    })
)

const subscribeStructure = defineClass(
  "subscribe-structure",
  "SUBSCRIBE / UNSUBSCRIBE with no filters, QoS 3, reserved option bits, retain handling 3, No Local on a shared subscription, a missing options byte",
  (_env, make) =>
    fc.record({
      version: v4v5,
      kind: fc.constantFrom("no-filters", "unsubscribe-no-filters", "qos-3", "reserved-bits", "retain-handling-3", "no-local-shared", "missing-options"),
      bits: fc.integer({ min: 1, max: 63 }),
      packetId: packetIdArb
    }).map(({ bits, kind, packetId, version }) => {
      const v5 = version === 5
      // retain handling 3 and No Local on $share only exist in 5.0: in 3.1.1 they are reserved bits
      const reservedMask = v5 ? ((bits % 3) + 1) << 6 : (bits << 2) & 0xfc
      const table: Record<string, () => [Buffer, string]> = {
        "no-filters": () => [Wire.subscribe(version, packetId, []), v5 ? "v5 MQTT-3.8.3-2 (at least one filter)" : "MQTT-3.8.3-3 (at least one filter)"],
        "unsubscribe-no-filters": () => [Wire.unsubscribe(version, packetId, []), v5 ? "v5 MQTT-3.10.3-2" : "MQTT-3.10.3-2 (at least one filter)"],
        "qos-3": () => [Wire.subscribe(version, packetId, [{ filter: "fuzz/f/a", options: 3 }]), v5 ? "v5 §3.8.3.1 (QoS 3 is a protocol error)" : "MQTT-3-8.3-4 (QoS 3: malformed)"],
        "reserved-bits": () => [
          Wire.subscribe(version, packetId, [{ filter: "fuzz/f/a", options: 1 | reservedMask }]),
          v5 ? "v5 MQTT-3.8.3-5 (reserved option bits)" : "MQTT-3-8.3-4 (reserved bits in the QoS byte)"
        ],
        "retain-handling-3": () => [
          Wire.subscribe(version, packetId, [{ filter: "fuzz/f/a", options: 0x30 | 1 }]),
          v5 ? "v5 §3.8.3.1 (Retain Handling 3 is a protocol error)" : "MQTT-3-8.3-4 (reserved bits)"
        ],
        "no-local-shared": () => [
          Wire.subscribe(version, packetId, [{ filter: "$share/g/fuzz/f", options: 0x04 | 1 }]),
          v5 ? "v5 MQTT-3.8.3-4 (No Local on a shared subscription)" : "MQTT-3-8.3-4 (reserved bits)"
        ],
        "missing-options": () => [
          Wire.packet(0x82, [Wire.u16(packetId), v5 ? Wire.props() : Buffer.alloc(0), Wire.str("fuzz/f/a")]),
          "3.1.1 §3.8.3 / v5 §3.8.3 (each filter is followed by its options byte: malformed)"
        ]
      }
      const [bytes, clause] = table[kind]!()
      return make({ variant: kind, version, post: true, bytes, expect: violation(version, clause) })
    })
)

const packetIdZero = defineClass(
  "packet-id-zero",
  "packet identifier 0 in PUBLISH QoS > 0, SUBSCRIBE, UNSUBSCRIBE",
  (_env, make) =>
    fc.record({ version: v4v5, kind: fc.constantFrom("PUBLISH QoS 1", "PUBLISH QoS 2", "SUBSCRIBE", "UNSUBSCRIBE"), topic: validTopicArb }).map(
      ({ kind, topic, version }) =>
        make({
          variant: kind,
          version,
          post: true,
          bytes: kind === "SUBSCRIBE"
            ? Wire.subscribe(version, 0, [{ filter: "fuzz/f/a", options: 1 }])
            : kind === "UNSUBSCRIBE"
            ? Wire.unsubscribe(version, 0, ["fuzz/f/a"])
            : Wire.publish({ version, topic, qos: kind.endsWith("1") ? 1 : 2, packetId: 0, payload: Buffer.from("id0") }),
          expect: violation(version, "MQTT-2.3.1-1 (non-zero packet identifier) / v5 MQTT-2.2.1-3")
        })
    )
)

const secondConnect = defineClass(
  "second-connect",
  "a second CONNECT on a connected connection",
  (_env, make) =>
    fc.record({ version: v4v5, clientId: clientIdArb }).map(({ clientId, version }) =>
      make({
        variant: "valid CONNECT again",
        version,
        post: true,
        bytes: validConnect(version, clientId),
        expect: violation(version, "MQTT-3.1.0-2 (second CONNECT: protocol violation) / v5 MQTT-3.1.0-2 DISCONNECT 0x82", [PROTOCOL_ERROR])
      })
    )
)

const beforeConnect = defineClass(
  "packet-before-connect",
  "a valid packet other than CONNECT as the first packet",
  (_env, make) =>
    fc.record({
      version: v4v5,
      kind: fc.constantFrom("PUBLISH", "PUBLISH QoS 1", "SUBSCRIBE", "UNSUBSCRIBE", "PINGREQ", "DISCONNECT", "PUBACK", "PUBREL", "CONNACK", "AUTH"),
      topic: validTopicArb,
      packetId: packetIdArb
    }).map(({ kind, packetId, topic, version }) => {
      const builders: Record<string, () => Buffer> = {
        "PUBLISH": () => Wire.publish({ version, topic, qos: 0, payload: Buffer.from("early") }),
        "PUBLISH QoS 1": () => Wire.publish({ version, topic, qos: 1, packetId, payload: Buffer.from("early") }),
        "SUBSCRIBE": () => Wire.subscribe(version, packetId, [{ filter: "fuzz/f/a", options: 1 }]),
        "UNSUBSCRIBE": () => Wire.unsubscribe(version, packetId, ["fuzz/f/a"]),
        "PINGREQ": () => Wire.PINGREQ,
        "DISCONNECT": () => Wire.DISCONNECT,
        "PUBACK": () => Wire.packet(0x40, Wire.u16(packetId)),
        "PUBREL": () => Wire.packet(0x62, Wire.u16(packetId)),
        "CONNACK": () => Buffer.from([0x20, 0x02, 0x00, 0x00]),
        "AUTH": () => Buffer.from([0xf0, 0x00])
      }
      return make({
        variant: kind,
        version,
        bytes: builders[kind]!(),
        expect: closedUnanswered("MQTT-3.1.0-1 (the first packet must be CONNECT; close, nothing sent)")
      })
    })
)

const pubrelUnknown = defineClass(
  "pubrel-unknown-id",
  "PUBREL for a packet identifier the broker never received",
  (_env, make) =>
    fc.record({ version: v4v5, packetId: packetIdArb, form: fc.constantFrom("short", "reason 0x00", "reason 0x92", "reason + properties") }).map(
      ({ form, packetId, version }) => {
        const v5 = version === 5
        const body = !v5 || form === "short"
          ? Wire.u16(packetId)
          : form === "reason 0x00"
          ? Buffer.concat([Wire.u16(packetId), Buffer.from([0x00])])
          : form === "reason 0x92"
          ? Buffer.concat([Wire.u16(packetId), Buffer.from([0x92])])
          : Buffer.concat([Wire.u16(packetId), Buffer.from([0x00]), Wire.props([prop.str(PropId.ReasonString, "why")])])
        const pubcomp = v5
          ? packetOf("PUBCOMP, same id, reason 0x92 or 0x00", 7, (p) => p.packetId === packetId && (p.code === 0x92 || p.code === 0x00))
          : packetOf("PUBCOMP, same id (4 bytes)", 7, (p) => p.packetId === packetId && p.bytes.length === 4)
        return make({
          variant: v5 ? form : "3.1.1",
          version,
          post: true,
          bytes: Wire.packet(0x62, body),
          replyTypes: [7],
          // 0x92 Packet Identifier not found is the precise 5.0 answer; 0x00 is accepted too
          expect: { clause: "3.1.1 §4.3.3 (PUBREL → PUBCOMP, same id) / v5 §3.7.2.1 0x92", allowed: [staysUp(pubcomp)] }
        })
      }
    )
)

const bytesAfterDisconnect = defineClass(
  "bytes-after-disconnect",
  "DISCONNECT followed by more bytes (garbage, or a PUBLISH), from a client with a will",
  (_env, make) =>
    fc.record({
      version: v4v5,
      form: fc.constantFrom("short", "reason 0x00", "reason + empty properties"),
      garbage: bytesArb(1, 32),
      // a PUBLISH after DISCONNECT, on a topic the canary watches (unique, so a delivery names its case)
      late: fc.option(fc.integer({ min: 0, max: 0x7fffffff }), { nil: undefined })
    }).map(({ form, garbage, late, version }) => {
      const after = late === undefined
        ? garbage
        : Wire.publish({ version, topic: `fuzz/will/late-${late.toString(36)}`, qos: 0, payload: Buffer.from("late") })
      const disconnectBytes = version !== 5 || form === "short"
        ? Wire.DISCONNECT
        : form === "reason 0x00"
        ? Buffer.from([0xe0, 0x01, 0x00])
        : Buffer.from([0xe0, 0x02, 0x00, 0x00])
      return make({
        variant: `${version === 5 ? form : "3.1.1"} DISCONNECT + ${late === undefined ? `${after.length} bytes` : "a PUBLISH"}`,
        version,
        post: true,
        will: true,
        bytes: Buffer.concat([disconnectBytes, after]),
        // the will (and the late PUBLISH) must not be published: the campaign watches fuzz/will/#
        expect: {
          clause: "MQTT-3.14.4-3 (will discarded, nothing after DISCONNECT processed) / v5 MQTT-3.1.2-10",
          allowed: [closes()]
        }
      })
    })
)

const reservedPacketType = defineClass(
  "reserved-or-server-packet-type",
  "packet type 0, 15 (AUTH without an authentication method in 5.0), or a server-only packet from a client",
  (_env, make) =>
    fc.record({ version: v4v5, kind: fc.constantFrom("type 0", "type 15", "CONNACK", "SUBACK", "UNSUBACK", "PINGRESP") }).map(({ kind, version }) => {
      const bytes: Record<string, Buffer> = {
        "type 0": Buffer.from([0x00, 0x00]),
        "type 15": Buffer.from([0xf0, 0x00]),
        "CONNACK": version === 5 ? Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00]) : Buffer.from([0x20, 0x02, 0x00, 0x00]),
        "SUBACK": version === 5 ? Buffer.from([0x90, 0x04, 0x00, 0x01, 0x00, 0x00]) : Buffer.from([0x90, 0x03, 0x00, 0x01, 0x00]),
        "UNSUBACK": version === 5 ? Buffer.from([0xb0, 0x04, 0x00, 0x01, 0x00, 0x00]) : Buffer.from([0xb0, 0x02, 0x00, 0x01]),
        "PINGRESP": Buffer.from([0xd0, 0x00])
      }
      return make({
        variant: kind === "type 15" && version === 5 ? "AUTH without authentication method" : kind,
        version,
        post: true,
        bytes: bytes[kind]!,
        expect: violation(version, "3.1.1 §2.2.1 (reserved types), MQTT-4.8.0-1 / v5 §2.1.2, v5 §4.12 (AUTH without an Authentication Method: protocol error 0x82)")
      })
    })
)

// ---------------------------------------------------------------------------
// MQTT 5 only
// ---------------------------------------------------------------------------

const v5DuplicateProperty = defineClass(
  "v5-duplicate-property",
  "MQTT 5 property that may appear once, sent twice (CONNECT, will, PUBLISH, SUBSCRIBE)",
  (_env, make) =>
    fc.record({
      where: fc.constantFrom("CONNECT", "will", "PUBLISH", "SUBSCRIBE"),
      pick: fc.nat(),
      clientId: clientIdArb
    }).map(({ clientId, pick, where }) => {
      const twice = (p: Buffer) => [p, p]
      const options: Record<string, ReadonlyArray<readonly [string, Buffer]>> = {
        CONNECT: [
          ["Session Expiry Interval", prop.u32(PropId.SessionExpiryInterval, 10)],
          ["Receive Maximum", prop.u16(PropId.ReceiveMaximum, 5)],
          ["Maximum Packet Size", prop.u32(PropId.MaximumPacketSize, 1000)],
          ["Topic Alias Maximum", prop.u16(PropId.TopicAliasMaximum, 3)],
          ["Request Problem Information", prop.byte(PropId.RequestProblemInformation, 1)],
          ["Request Response Information", prop.byte(PropId.RequestResponseInformation, 0)]
        ],
        will: [
          ["Will Delay Interval", prop.u32(PropId.WillDelayInterval, 1)],
          ["Payload Format Indicator", prop.byte(PropId.PayloadFormatIndicator, 0)],
          ["Message Expiry Interval", prop.u32(PropId.MessageExpiryInterval, 60)],
          ["Content Type", prop.str(PropId.ContentType, "text/plain")]
        ],
        PUBLISH: [
          ["Payload Format Indicator", prop.byte(PropId.PayloadFormatIndicator, 0)],
          ["Message Expiry Interval", prop.u32(PropId.MessageExpiryInterval, 60)],
          ["Topic Alias", prop.u16(PropId.TopicAlias, 1)],
          ["Content Type", prop.str(PropId.ContentType, "text/plain")],
          ["Response Topic", prop.str(0x08, "fuzz/t/reply")],
          ["Correlation Data", prop.str(0x09, "c")]
        ],
        SUBSCRIBE: [["Subscription Identifier", prop.varint(PropId.SubscriptionIdentifier, 7)]]
      }
      const list = options[where]!
      const [name, p] = list[pick % list.length]!
      const clause = `v5 §${where === "SUBSCRIBE" ? "3.8.2.1.2" : where === "PUBLISH" ? "3.3.2.3" : where === "will" ? "3.1.3.2" : "3.1.2.11"} (${name} more than once: protocol error)`
      const bytes = where === "CONNECT"
        ? Wire.connect({ version: 5, clientId, properties: twice(p) })
        : where === "will"
        ? Wire.connect({ version: 5, clientId, will: { topic: "fuzz/w/dup", payload: Buffer.from("w"), qos: 0, retain: false, properties: twice(p) } })
        : where === "PUBLISH"
        ? Wire.publish({ version: 5, topic: "fuzz/t/dup", qos: 0, properties: twice(p), payload: Buffer.from("dup") })
        : Wire.subscribe(5, 9, [{ filter: "fuzz/f/dup", options: 1 }], twice(p))
      const pre = where === "CONNECT" || where === "will"
      return make({
        variant: `${where}: ${name} twice`,
        version: 5,
        post: !pre,
        bytes,
        expect: pre ? malformedConnect(5, clause) : violation(5, clause)
      })
    })
)

const v5InvalidProperty = defineClass(
  "v5-invalid-property",
  "MQTT 5 property not defined for the packet, an unknown identifier, or a value the spec forbids",
  (_env, make) =>
    fc.record({ where: fc.constantFrom("CONNECT", "PUBLISH", "SUBSCRIBE"), pick: fc.nat(), clientId: clientIdArb }).map(({ clientId, pick, where }) => {
      const options: Record<string, ReadonlyArray<readonly [string, Buffer]>> = {
        CONNECT: [
          ["Topic Alias (PUBLISH only)", prop.u16(PropId.TopicAlias, 1)],
          ["Payload Format Indicator (not a CONNECT property)", prop.byte(PropId.PayloadFormatIndicator, 0)],
          ["Server Keep Alive (CONNACK only)", prop.u16(PropId.ServerKeepAlive, 10)],
          ["Assigned Client Identifier (CONNACK only)", prop.str(PropId.AssignedClientIdentifier, "x")],
          ["Maximum QoS (CONNACK only)", prop.byte(PropId.MaximumQoS, 1)],
          ["unknown identifier 0x00", Buffer.from([0x00, 0x00])],
          ["unknown identifier 0x04", Buffer.from([0x04, 0x00])],
          ["unknown identifier 0x7F", Buffer.from([0x7f, 0x00])],
          ["Receive Maximum 0", prop.u16(PropId.ReceiveMaximum, 0)],
          ["Maximum Packet Size 0", prop.u32(PropId.MaximumPacketSize, 0)],
          ["Request Problem Information 2", prop.byte(PropId.RequestProblemInformation, 2)],
          ["Request Response Information 2", prop.byte(PropId.RequestResponseInformation, 2)]
        ],
        PUBLISH: [
          ["Session Expiry Interval (not a PUBLISH property)", prop.u32(PropId.SessionExpiryInterval, 5)],
          ["Subscription Identifier from a client (MQTT-3.3.4-6)", prop.varint(PropId.SubscriptionIdentifier, 1)],
          ["Receive Maximum (CONNECT/CONNACK only)", prop.u16(PropId.ReceiveMaximum, 5)],
          ["unknown identifier 0x00", Buffer.from([0x00, 0x00])],
          ["unknown identifier 0x7F", Buffer.from([0x7f, 0x00])]
        ],
        SUBSCRIBE: [
          ["Topic Alias (PUBLISH only)", prop.u16(PropId.TopicAlias, 1)],
          ["Subscription Identifier 0", prop.varint(PropId.SubscriptionIdentifier, 0)],
          ["unknown identifier 0x05", Buffer.from([0x05, 0x00])]
        ]
      }
      const list = options[where]!
      const [name, p] = list[pick % list.length]!
      const clause = `v5 §2.2.2.2 / §${where === "CONNECT" ? "3.1.2.11" : where === "PUBLISH" ? "3.3.2.3" : "3.8.2.1"} (${name}: malformed / protocol error)`
      const bytes = where === "CONNECT"
        ? Wire.connect({ version: 5, clientId, properties: [p] })
        : where === "PUBLISH"
        ? Wire.publish({ version: 5, topic: "fuzz/t/prop", qos: 0, properties: [p], payload: Buffer.from("prop") })
        : Wire.subscribe(5, 9, [{ filter: "fuzz/f/prop", options: 1 }], [p])
      return make({
        variant: `${where}: ${name}`,
        version: 5,
        post: where !== "CONNECT",
        bytes,
        expect: where === "CONNECT" ? malformedConnect(5, clause) : violation(5, clause)
      })
    })
)

const topicAliasInvalid = defineClass(
  "v5-topic-alias-invalid",
  "MQTT 5 PUBLISH with Topic Alias 0, above the broker's Topic Alias Maximum, or an alias never set",
  (env, make) =>
    fc.record({
      kind: fc.constantFrom("zero", "above-maximum", "unset-alias-empty-topic"),
      above: fc.integer({ min: env.topicAliasMaximum + 1, max: 0xffff }),
      unset: fc.integer({ min: 1, max: Math.max(1, env.topicAliasMaximum) }),
      qos: fc.constantFrom(0, 1)
    }).map(({ above, kind, qos, unset }) => {
      const alias = kind === "zero" ? 0 : kind === "above-maximum" ? above : unset
      return make({
        variant: kind === "above-maximum" ? `alias ${alias} > ${env.topicAliasMaximum}` : kind === "zero" ? "alias 0" : `alias ${alias} never set, empty topic`,
        version: 5,
        post: true,
        bytes: Wire.publish({
          version: 5,
          topic: kind === "unset-alias-empty-topic" ? "" : "fuzz/t/alias",
          qos,
          packetId: 4,
          properties: [prop.u16(PropId.TopicAlias, alias)],
          payload: Buffer.from("alias")
        }),
        expect: violation(
          5,
          kind === "unset-alias-empty-topic"
            ? "v5 §3.3.2.3.4 (alias without a mapping: protocol error; DISCONNECT 0x82, 0x94 or 0x90)"
            : kind === "zero"
            ? "v5 MQTT-3.3.2-8 (Topic Alias 0), DISCONNECT 0x94"
            : "v5 MQTT-3.3.2-9 (above Topic Alias Maximum), DISCONNECT 0x94",
          // no code is named for an alias without a mapping: 0x82, 0x94 and 0x90 (the empty topic is unusable) all fit
          kind === "unset-alias-empty-topic" ? [0x94, PROTOCOL_ERROR, 0x90] : [0x94, PROTOCOL_ERROR]
        )
      })
    })
)

/** Every class, in report order. */
export const classes: ReadonlyArray<FuzzClass> = [
  remainingLengthOverlong,
  truncatedFrame,
  oversize,
  garbage,
  badProtocolName,
  badProtocolLevel,
  connectFlags,
  clientIdRejected,
  badUtf8ClientId,
  badWillTopic,
  beforeConnect,
  secondConnect,
  reservedFlags,
  reservedPacketType,
  publishQos3,
  badUtf8Topic,
  invalidTopicName,
  badUtf8Filter,
  invalidTopicFilter,
  subscribeStructure,
  packetIdZero,
  pubrelUnknown,
  bytesAfterDisconnect,
  v5DuplicateProperty,
  v5InvalidProperty,
  topicAliasInvalid
]

/** Any case of any class, every class equally likely. */
export const anyCase = (env: FuzzEnv): fc.Arbitrary<Case> => fc.oneof(...classes.map((c) => c.arbitrary(env)))
