import CRabbitMQ
import Foundation

/// Memory for the C structures of one outgoing call: strings, tables and properties are copied into an
/// `amqp_pool_t` that lives until the arena is released, so no `amqp_bytes_t` points at a temporary Swift
/// string. Used only on the connection thread, one call at a time.
final class CArena {
    private let pool: UnsafeMutablePointer<amqp_pool_t>

    init() {
        pool = .allocate(capacity: 1)
        init_amqp_pool(pool, 4096)
    }

    deinit {
        empty_amqp_pool(pool)
        pool.deallocate()
    }

    /// Frees everything allocated so far, keeping the pool's pages for the next call.
    func reset() { recycle_amqp_pool(pool) }

    func bytes(_ string: String) -> amqp_bytes_t {
        var string = string
        return string.withUTF8 { copy(UnsafeRawBufferPointer($0)) }
    }

    func bytes(_ data: Data) -> amqp_bytes_t {
        data.withUnsafeBytes { copy($0) }
    }

    /// A NUL-terminated copy, for the few C parameters that take `const char *`.
    func cString(_ string: String) -> UnsafePointer<CChar> {
        let utf8 = Array(string.utf8) + [0]
        let memory = amqp_pool_alloc(pool, utf8.count)!
        utf8.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return UnsafePointer(memory.assumingMemoryBound(to: CChar.self))
    }

    private func copy(_ source: UnsafeRawBufferPointer) -> amqp_bytes_t {
        guard source.count > 0, let memory = amqp_pool_alloc(pool, source.count) else { return amqp_empty_bytes }
        memory.copyMemory(from: source.baseAddress!, byteCount: source.count)
        return amqp_bytes_t(len: source.count, bytes: memory)
    }

    func table(_ table: AMQPTable) -> amqp_table_t {
        guard !table.isEmpty else { return amqp_empty_table }
        // In key order; the members' positions are sorted, so no key is hashed again to find its value.
        var order = Array(table.indices)
        order.sort { table[$0].key < table[$1].key }
        let entries = amqp_pool_alloc(pool, MemoryLayout<amqp_table_entry_t>.stride * order.count)!
            .bindMemory(to: amqp_table_entry_t.self, capacity: order.count)
        for (position, index) in order.enumerated() {
            entries[position] = amqp_table_entry_t(key: bytes(table[index].key), value: field(table[index].value))
        }
        return amqp_table_t(num_entries: Int32(order.count), entries: entries)
    }

    private func field(_ value: AMQPFieldValue) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        switch value {
        case .bool(let flag):
            field.kind = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue)
            field.value.boolean = flag ? 1 : 0
        case .int(let number):
            field.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
            field.value.i64 = number
        case .double(let number):
            field.kind = UInt8(AMQP_FIELD_KIND_F64.rawValue)
            field.value.f64 = number
        case .string(let text):
            field.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
            field.value.bytes = bytes(text)
        case .bytes(let data):
            field.kind = UInt8(AMQP_FIELD_KIND_BYTES.rawValue)
            field.value.bytes = bytes(data)
        case .timestamp(let date):
            field.kind = UInt8(AMQP_FIELD_KIND_TIMESTAMP.rawValue)
            field.value.u64 = UInt64(max(0, date.timeIntervalSince1970.rounded(.down)))
        case .array(let values):
            field.kind = UInt8(AMQP_FIELD_KIND_ARRAY.rawValue)
            if values.isEmpty {
                field.value.array = amqp_array_t(num_entries: 0, entries: nil)
            } else {
                let entries = amqp_pool_alloc(pool, MemoryLayout<amqp_field_value_t>.stride * values.count)!
                    .bindMemory(to: amqp_field_value_t.self, capacity: values.count)
                for (index, element) in values.enumerated() { entries[index] = self.field(element) }
                field.value.array = amqp_array_t(num_entries: Int32(values.count), entries: entries)
            }
        case .table(let nested):
            field.kind = UInt8(AMQP_FIELD_KIND_TABLE.rawValue)
            field.value.table = table(nested)
        case .void:
            field.kind = UInt8(AMQP_FIELD_KIND_VOID.rawValue)
        }
        return field
    }

    func properties(_ properties: MessageProperties) -> amqp_basic_properties_t {
        var result = amqp_basic_properties_t()
        var flags: amqp_flags_t = waybill_flag_delivery_mode
        result.delivery_mode = properties.persistent ? 2 : 1
        func set(_ value: String?, _ flag: amqp_flags_t, _ target: inout amqp_bytes_t) {
            guard let value else { return }
            target = bytes(value)
            flags |= flag
        }
        set(properties.contentType, waybill_flag_content_type, &result.content_type)
        set(properties.contentEncoding, waybill_flag_content_encoding, &result.content_encoding)
        set(properties.correlationID, waybill_flag_correlation_id, &result.correlation_id)
        set(properties.replyTo, waybill_flag_reply_to, &result.reply_to)
        set(properties.expiration, waybill_flag_expiration, &result.expiration)
        set(properties.messageID, waybill_flag_message_id, &result.message_id)
        set(properties.type, waybill_flag_type, &result.type)
        set(properties.userID, waybill_flag_user_id, &result.user_id)
        set(properties.appID, waybill_flag_app_id, &result.app_id)
        if !properties.headers.isEmpty {
            result.headers = table(properties.headers)
            flags |= waybill_flag_headers
        }
        if let priority = properties.priority {
            result.priority = priority
            flags |= waybill_flag_priority
        }
        if let timestamp = properties.timestamp {
            result.timestamp = UInt64(max(0, timestamp.timeIntervalSince1970.rounded(.down)))
            flags |= waybill_flag_timestamp
        }
        result._flags = flags
        return result
    }
}

/// Decoding of what rabbitmq-c hands over. Every result is a Swift copy: the library's frame memory is
/// released right after each frame is dispatched.
enum Wire {
    static func string(_ bytes: amqp_bytes_t) -> String {
        guard bytes.len > 0, let base = bytes.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: base, count: bytes.len), as: UTF8.self)
    }

    static func data(_ bytes: amqp_bytes_t) -> Data {
        guard bytes.len > 0, let base = bytes.bytes else { return Data() }
        return Data(bytes: base, count: bytes.len)
    }

    static func table(_ table: amqp_table_t) -> AMQPTable {
        var result = AMQPTable()
        guard table.num_entries > 0, let entries = table.entries else { return result }
        for index in 0..<Int(table.num_entries) {
            result[string(entries[index].key)] = field(entries[index].value)
        }
        return result
    }

    static func field(_ field: amqp_field_value_t) -> AMQPFieldValue {
        switch UInt32(field.kind) {
        case AMQP_FIELD_KIND_BOOLEAN.rawValue: return .bool(field.value.boolean != 0)
        case AMQP_FIELD_KIND_I8.rawValue: return .int(Int64(field.value.i8))
        case AMQP_FIELD_KIND_U8.rawValue: return .int(Int64(field.value.u8))
        case AMQP_FIELD_KIND_I16.rawValue: return .int(Int64(field.value.i16))
        case AMQP_FIELD_KIND_U16.rawValue: return .int(Int64(field.value.u16))
        case AMQP_FIELD_KIND_I32.rawValue: return .int(Int64(field.value.i32))
        case AMQP_FIELD_KIND_U32.rawValue: return .int(Int64(field.value.u32))
        case AMQP_FIELD_KIND_I64.rawValue: return .int(field.value.i64)
        case AMQP_FIELD_KIND_U64.rawValue: return .int(Int64(truncatingIfNeeded: field.value.u64))
        case AMQP_FIELD_KIND_F32.rawValue: return .double(Double(field.value.f32))
        case AMQP_FIELD_KIND_F64.rawValue: return .double(field.value.f64)
        case AMQP_FIELD_KIND_DECIMAL.rawValue:
            let decimal = field.value.decimal
            return .double(Double(decimal.value) / pow(10, Double(decimal.decimals)))
        case AMQP_FIELD_KIND_UTF8.rawValue: return .string(string(field.value.bytes))
        case AMQP_FIELD_KIND_BYTES.rawValue: return .bytes(data(field.value.bytes))
        case AMQP_FIELD_KIND_TIMESTAMP.rawValue:
            return .timestamp(Date(timeIntervalSince1970: TimeInterval(field.value.u64)))
        case AMQP_FIELD_KIND_ARRAY.rawValue:
            let array = field.value.array
            guard array.num_entries > 0, let entries = array.entries else { return .array([]) }
            return .array((0..<Int(array.num_entries)).map { Self.field(entries[$0]) })
        case AMQP_FIELD_KIND_TABLE.rawValue: return .table(table(field.value.table))
        default: return .void
        }
    }

    static func properties(_ raw: UnsafeRawPointer?) -> MessageProperties {
        guard let raw else { return MessageProperties() }
        let properties = raw.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee
        let flags = properties._flags
        func text(_ flag: amqp_flags_t, _ bytes: amqp_bytes_t) -> String? {
            flags & flag != 0 ? string(bytes) : nil
        }
        return MessageProperties(
            contentType: text(waybill_flag_content_type, properties.content_type),
            contentEncoding: text(waybill_flag_content_encoding, properties.content_encoding),
            headers: flags & waybill_flag_headers != 0 ? table(properties.headers) : [:],
            persistent: flags & waybill_flag_delivery_mode != 0 && properties.delivery_mode == 2,
            priority: flags & waybill_flag_priority != 0 ? properties.priority : nil,
            correlationID: text(waybill_flag_correlation_id, properties.correlation_id),
            replyTo: text(waybill_flag_reply_to, properties.reply_to),
            expiration: text(waybill_flag_expiration, properties.expiration),
            messageID: text(waybill_flag_message_id, properties.message_id),
            timestamp: flags & waybill_flag_timestamp != 0
                ? Date(timeIntervalSince1970: TimeInterval(properties.timestamp)) : nil,
            type: text(waybill_flag_type, properties.type),
            userID: text(waybill_flag_user_id, properties.user_id),
            appID: text(waybill_flag_app_id, properties.app_id))
    }

    static func libraryStatus(_ code: Int32) -> AMQPError.LibraryStatus {
        AMQPError.LibraryStatus(code: code, text: String(cString: amqp_error_string2(code)))
    }
}
