import SagaEngine

/// The bytes of a saga's state as the store keeps them (the `sagas.state` column).
///
/// The store encodes and decodes for you; use this to inspect a raw column or to measure the codec.
public enum SagaStateFormat {
    /// Encodes `instance` in the compact binary state format. Two encodings of one instance may differ in the order
    /// of JSON object members (it follows dictionary iteration), so compare decoded instances, not bytes.
    public static func encode(_ instance: SagaInstance) -> [UInt8] {
        StateCodec.encode(instance)
    }

    /// Decodes a state blob made by ``encode(_:)`` of this or an earlier Waybill. Throws a ``SagaStoreError`` with
    /// code `corruptState` when the bytes are damaged or come from a newer format; it never traps on bad input.
    public static func decode(_ bytes: [UInt8]) throws -> SagaInstance {
        do {
            return try StateCodec.decode(bytes)
        } catch {
            throw SagaStoreError(.corruptState, "\(error.message). Decode it with the Waybill version that wrote it.")
        }
    }
}
