import CZlib

/// gzip through the system zlib: the saga archive appends one gzip member per archived batch to a day's file, which
/// `zcat` and `gzip -dc` read as one stream (RFC 1952 allows members back to back).
enum Gzip {
    /// Why bytes could not be compressed or read back.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// `bytes` as one gzip member.
    static func compress(_ bytes: [UInt8], level: Int32 = 6) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        guard waybill_deflate_init_gzip(&stream, level) == Z_OK else {
            throw Failure(description: "zlib cannot start compressing (out of memory?)")
        }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))) + 32)
        let status = bytes.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = uInt(input.count)
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else {
            throw Failure(description: "zlib stopped compressing with status \(status)")
        }
        output.removeLast(output.count - Int(stream.total_out))
        return output
    }

    /// The bytes of every gzip member in `bytes`, in order. Throws when a member is damaged or cut short (a file
    /// whose last write did not finish).
    static func decompress(_ bytes: [UInt8]) throws(Failure) -> [UInt8] {
        let read = inflateMembers(bytes)
        if let failure = read.failure { throw failure }
        return read.output
    }

    /// How many leading bytes of `bytes` are whole gzip members: all of them, or up to the first member that is
    /// damaged or cut short.
    static func wholeMembersLength(_ bytes: [UInt8]) -> Int {
        inflateMembers(bytes).whole
    }

    /// Inflates member after member until the end or the first bad one.
    private static func inflateMembers(_ bytes: [UInt8]) -> (output: [UInt8], whole: Int, failure: Failure?) {
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count * 6)
        var offset = 0
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while offset < bytes.count {
            var stream = z_stream()
            guard waybill_inflate_init_gzip(&stream) == Z_OK else {
                return (result, offset, Failure(description: "zlib cannot start reading (out of memory?)"))
            }
            defer { inflateEnd(&stream) }
            var status = Z_OK
            var produced: [UInt8] = []
            bytes.withUnsafeBufferPointer { input in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + offset)
                stream.avail_in = uInt(input.count - offset)
                while status == Z_OK {
                    let count = chunk.withUnsafeMutableBufferPointer { out in
                        stream.next_out = out.baseAddress
                        stream.avail_out = uInt(out.count)
                        status = inflate(&stream, Z_NO_FLUSH)
                        return out.count - Int(stream.avail_out)
                    }
                    produced.append(contentsOf: chunk[..<count])
                }
            }
            guard status == Z_STREAM_END else {
                return (
                    result, offset,
                    Failure(
                        description: status == Z_BUF_ERROR
                            ? "the gzip member at byte \(offset) is cut short"
                            : "the gzip member at byte \(offset) is damaged (zlib status \(status))")
                )
            }
            result += produced
            offset += Int(stream.total_in)
        }
        return (result, offset, nil)
    }
}
