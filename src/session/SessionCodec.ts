/**
 * The stored form of sessions and messages: a versioned JSON text described by effect `Schema`,
 * so any persistent `SessionStateProvider` (SQLite here, Redis or a file elsewhere) writes the
 * same bytes and refuses the same corrupt ones. Payloads and correlation data are base64,
 * subscriptions an array of `[filter, options]`, the queue an array oldest first.
 *
 * Every text carries its format version (`{"v":1,...}`): a reader meets an unknown version with a
 * `SessionCodecError` instead of guessing, and a later version can add a decoder for version 1.
 *
 * Ground floor: imports nothing from outside `src/session`.
 */
import { Cause, Data, Effect, Exit, Schema, SchemaGetter } from "effect"
import type { Message } from "./Message.ts"
import { MessageQueue } from "./MessageQueue.ts"
import type { SessionState, Subscription } from "./SessionState.ts"

/** The format version this module writes (and the only one it reads so far). */
export const VERSION = 1

/** A stored text that is not a session or message of a known format version. */
export class SessionCodecError extends Data.TaggedError("SessionCodecError")<{
  /** What was being decoded: "session" or "message". */
  readonly kind: "session" | "message"
  /** Why it could not be read, in one line. */
  readonly reason: string
}> {
  override get message(): string {
    return `cannot decode a stored ${this.kind}: ${this.reason}`
  }
}

const QoS = Schema.Literals([0, 1, 2])

const UserProperty = Schema.Tuple([Schema.String, Schema.String])

/** MQTT 5 properties a message carries, as stored. */
const PublishProperties = Schema.Struct({
  payloadFormatIndicator: Schema.optionalKey(Schema.Boolean),
  contentType: Schema.optionalKey(Schema.String),
  responseTopic: Schema.optionalKey(Schema.String),
  correlationData: Schema.optionalKey(Schema.Uint8ArrayFromBase64),
  userProperties: Schema.optionalKey(Schema.Array(UserProperty))
})

/** A `Message` as stored: payload and correlation data in base64. */
export const MessageSchema = Schema.Struct({
  topic: Schema.String,
  payload: Schema.Uint8ArrayFromBase64,
  qos: QoS,
  retain: Schema.Boolean,
  properties: Schema.optional(PublishProperties),
  expiresAt: Schema.optional(Schema.Number),
  subscriptionIds: Schema.optional(Schema.Array(Schema.Number))
})

const SubscriptionSchema = Schema.Struct({
  qos: QoS,
  noLocal: Schema.optional(Schema.Boolean),
  retainAsPublished: Schema.optional(Schema.Boolean),
  retainHandling: Schema.optional(Schema.Literals([0, 1, 2])),
  identifier: Schema.optional(Schema.Number)
})

const InflightSchema = Schema.Struct({
  packetId: Schema.Number,
  message: MessageSchema,
  stage: Schema.Literals(["puback", "pubrec", "pubcomp"]),
  awaitingResend: Schema.optional(Schema.Literal(true))
})

/** Subscriptions stored as `[filter, options]` pairs, a `ReadonlyMap` in memory. */
const Subscriptions = Schema.Array(Schema.Tuple([Schema.String, SubscriptionSchema])).pipe(
  Schema.decodeTo(Schema.instanceOf(Map<string, Subscription>) as Schema.instanceOf<ReadonlyMap<string, Subscription>>, {
    decode: SchemaGetter.transform((entries) => new Map(entries)),
    encode: SchemaGetter.transform((map) => Array.from(map))
  })
)

/** The queue stored as an array, oldest first. */
const Queue = Schema.Array(MessageSchema).pipe(
  Schema.decodeTo(Schema.declare((u): u is MessageQueue => u instanceof MessageQueue), {
    decode: SchemaGetter.transform((messages) => MessageQueue.from(messages)),
    encode: SchemaGetter.transform((queue) => queue.toArray())
  })
)

/** A `SessionState` as stored (without the version envelope). */
export const SessionStateSchema = Schema.Struct({
  clientId: Schema.String,
  clean: Schema.Boolean,
  expiryInterval: Schema.Number,
  subscriptions: Subscriptions,
  inflight: Schema.Array(InflightSchema),
  queue: Queue,
  dropped: Schema.Number,
  awaitingPubrel: Schema.Array(Schema.Number),
  nextPacketId: Schema.Number,
  will: Schema.optional(MessageSchema),
  willDelayInterval: Schema.Number,
  willAt: Schema.optional(Schema.Number),
  receiveMaximum: Schema.Number,
  maximumPacketSize: Schema.optional(Schema.Number),
  disconnectedAt: Schema.optional(Schema.Number)
})

const SessionEnvelope = Schema.Struct({ v: Schema.Literal(VERSION), session: SessionStateSchema })
const MessageEnvelope = Schema.Struct({ v: Schema.Literal(VERSION), message: MessageSchema })

const encodeSessionEnvelope = Schema.encodeSync(SessionEnvelope)
const encodeMessageEnvelope = Schema.encodeSync(MessageEnvelope)
const decodeSessionEnvelope = Schema.decodeUnknownExit(SessionEnvelope)
const decodeMessageEnvelope = Schema.decodeUnknownExit(MessageEnvelope)

const versionOf = (value: unknown): unknown =>
  typeof value === "object" && value !== null && "v" in value ? (value as { v: unknown }).v : undefined

const decodeText = <A>(
  kind: "session" | "message",
  text: string,
  decode: (value: unknown) => Exit.Exit<{ readonly v: number } & Record<typeof kind, A>, unknown>
): A => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new SessionCodecError({ kind, reason: `not JSON (${error instanceof Error ? error.message : String(error)})` })
  }
  const version = versionOf(value)
  if (version !== VERSION) {
    throw new SessionCodecError({ kind, reason: `unknown format version ${JSON.stringify(version) ?? "(none)"}` })
  }
  const exit = decode(value)
  if (Exit.isSuccess(exit)) return exit.value[kind]
  const error = Cause.squash(exit.cause as Cause.Cause<unknown>)
  throw new SessionCodecError({ kind, reason: (error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ").trim() })
}

/** A session as stored text (the current format version). */
export const encodeSession = (state: SessionState): string =>
  JSON.stringify(encodeSessionEnvelope({ v: VERSION, session: state }))

/** A session from stored text; throws `SessionCodecError` for text of no known format. */
export const decodeSessionSync = (text: string): SessionState =>
  decodeText("session", text, decodeSessionEnvelope as never) as SessionState

/** A session from stored text, failing with `SessionCodecError` for text of no known format. */
export const decodeSession = (text: string): Effect.Effect<SessionState, SessionCodecError> =>
  Effect.try({ try: () => decodeSessionSync(text), catch: (error) => error as SessionCodecError })

/** A message as stored text (the current format version). */
export const encodeMessage = (message: Message): string =>
  JSON.stringify(encodeMessageEnvelope({ v: VERSION, message }))

/** A message from stored text; throws `SessionCodecError` for text of no known format. */
export const decodeMessageSync = (text: string): Message =>
  decodeText("message", text, decodeMessageEnvelope as never) as Message

/** A message from stored text, failing with `SessionCodecError` for text of no known format. */
export const decodeMessage = (text: string): Effect.Effect<Message, SessionCodecError> =>
  Effect.try({ try: () => decodeMessageSync(text), catch: (error) => error as SessionCodecError })
