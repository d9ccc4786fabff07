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

export { ConnackCode, SubackFailure } from "./ReasonCode.ts"
