import Foundation

/// A workflow file as read from disk: its name, its text and the content hash it is stored under.
///
/// Sagas remember the hash of the definition they started with, so a running saga keeps its version after the
/// file changes. The hash covers the exact UTF-8 bytes of the file, comments and whitespace included.
public struct WorkflowSource: Sendable, Hashable {
    /// The file name as the user gave it; diagnostics print it verbatim.
    public var file: String
    /// The YAML text.
    public var text: String
    /// The lowercase hex SHA-256 of `text`'s UTF-8 bytes (64 characters).
    public var hash: String

    /// Wraps text that is already in memory and computes its hash.
    public init(file: String, text: String) {
        self.file = file
        self.text = text
        self.hash = ContentHash.sha256Hex(Array(text.utf8))
    }

    /// Reads a workflow file.
    ///
    /// - Throws: ``WorkflowSourceReadError`` when the file is missing, a directory, unreadable or not UTF-8.
    public static func read(file path: String) throws(WorkflowSourceReadError) -> WorkflowSource {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw WorkflowSourceReadError(file: path, reason: "no such file")
        }
        guard !isDirectory.boolValue else {
            throw WorkflowSourceReadError(file: path, reason: "it is a directory")
        }
        guard manager.isReadableFile(atPath: path), let data = manager.contents(atPath: path) else {
            throw WorkflowSourceReadError(file: path, reason: "permission denied")
        }
        guard let text = String(bytes: data, encoding: .utf8) else {
            throw WorkflowSourceReadError(file: path, reason: "it is not UTF-8 text")
        }
        return WorkflowSource(file: path, text: text)
    }
}

/// A workflow file that could not be read.
///
/// Its `description` is the line `waybill validate` prints, `FILE: cannot read file: REASON`.
public struct WorkflowSourceReadError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file name as given.
    public var file: String
    /// Why it could not be read, e.g. `no such file`.
    public var reason: String

    /// Creates the error.
    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }

    /// Always ``WorkflowDiagnostic/Code/unreadableFile``.
    public var code: WorkflowDiagnostic.Code { .unreadableFile }

    /// `cannot read file: REASON`.
    public var message: String { "cannot read file: \(reason)" }

    /// `FILE: cannot read file: REASON`.
    public var description: String { "\(file): \(message)" }
}

/// SHA-256 (FIPS 180-4) in plain Swift, for content-addressing workflow definitions without a crypto dependency.
///
/// Not meant for secrets: it is not constant-time. It is fast enough for files of a few kilobytes.
public enum ContentHash {
    /// The 32-byte SHA-256 digest of `bytes`.
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var state: [UInt32] = [
            0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
        ]
        var message = bytes
        let bitLength = UInt64(bytes.count) &* 8
        message.append(0x80)
        while message.count % 64 != 56 { message.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) {
            message.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
        }
        var schedule = [UInt32](repeating: 0, count: 64)
        for blockStart in stride(from: 0, to: message.count, by: 64) {
            for index in 0..<16 {
                let offset = blockStart + index * 4
                schedule[index] =
                    UInt32(message[offset]) << 24 | UInt32(message[offset + 1]) << 16
                    | UInt32(message[offset + 2]) << 8 | UInt32(message[offset + 3])
            }
            for index in 16..<64 {
                let w15 = schedule[index - 15]
                let w2 = schedule[index - 2]
                let sigma0 = w15.rotatedRight(7) ^ w15.rotatedRight(18) ^ (w15 >> 3)
                let sigma1 = w2.rotatedRight(17) ^ w2.rotatedRight(19) ^ (w2 >> 10)
                schedule[index] = schedule[index - 16] &+ sigma0 &+ schedule[index - 7] &+ sigma1
            }
            var a = state[0]
            var b = state[1]
            var c = state[2]
            var d = state[3]
            var e = state[4]
            var f = state[5]
            var g = state[6]
            var h = state[7]
            for index in 0..<64 {
                let sum1 = e.rotatedRight(6) ^ e.rotatedRight(11) ^ e.rotatedRight(25)
                let choice = (e & f) ^ (~e & g)
                let temp1 = h &+ sum1 &+ choice &+ roundConstants[index] &+ schedule[index]
                let sum0 = a.rotatedRight(2) ^ a.rotatedRight(13) ^ a.rotatedRight(22)
                let majority = (a & b) ^ (a & c) ^ (b & c)
                let temp2 = sum0 &+ majority
                h = g
                g = f
                f = e
                e = d &+ temp1
                d = c
                c = b
                b = a
                a = temp1 &+ temp2
            }
            state[0] &+= a
            state[1] &+= b
            state[2] &+= c
            state[3] &+= d
            state[4] &+= e
            state[5] &+= f
            state[6] &+= g
            state[7] &+= h
        }
        return state.flatMap { word in
            [
                UInt8(truncatingIfNeeded: word >> 24), UInt8(truncatingIfNeeded: word >> 16),
                UInt8(truncatingIfNeeded: word >> 8), UInt8(truncatingIfNeeded: word),
            ]
        }
    }

    /// The SHA-256 digest of `bytes` as 64 lowercase hex characters.
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var text = ""
        text.reserveCapacity(64)
        for byte in sha256(bytes) {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return text
    }

    private static let roundConstants: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]
}

extension UInt32 {
    fileprivate func rotatedRight(_ count: UInt32) -> UInt32 {
        (self >> count) | (self << (32 - count))
    }
}
