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
    /// code `corruptState`, and what is wrong with the bytes as the cause, when the bytes are damaged or come from a
    /// newer format; it never traps on bad input.
    public static func decode(_ bytes: [UInt8]) throws -> SagaInstance {
        do {
            return try StateCodec.decode(bytes)
        } catch let error where error.code == .unsupportedStateFormat {
            throw SagaStoreError(
                .corruptState,
                "the saga state was written by a Waybill newer than this binary; decode it with that version or a "
                    + "later one",
                cause: error)
        } catch {
            throw SagaStoreError(
                .corruptState,
                "the bytes are not a whole saga state; pass the `sagas.state` column unchanged, and if the column "
                    + "itself is damaged, restore the store from a backup",
                cause: error)
        }
    }
}
