/**
 * MQTT packet types as mqtt-packet models them, re-exported under one name so the
 * rest of the broker depends on this module rather than on the codec library.
 */
export type {
  IConnackPacket as ConnackPacket,
  IConnectPacket as ConnectPacket,
  IDisconnectPacket as DisconnectPacket,
  IPubackPacket as PubackPacket,
  IPubcompPacket as PubcompPacket,
  IPublishPacket as PublishPacket,
  IPubrecPacket as PubrecPacket,
  IPubrelPacket as PubrelPacket,
  ISubscribePacket as SubscribePacket,
  IUnsubscribePacket as UnsubscribePacket,
  Packet
} from "mqtt-packet"

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3). */
export const ConnackCode = {
  Accepted: 0,
  UnacceptableProtocolVersion: 1,
  IdentifierRejected: 2,
  ServerUnavailable: 3,
  BadUsernameOrPassword: 4,
  NotAuthorized: 5
} as const

/** SUBACK return code for a refused filter. */
export const SubackFailure = 0x80
