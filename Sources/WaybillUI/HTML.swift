/// A fragment of HTML. Built by string interpolation that escapes every `String` it is given and inserts other
/// fragments as they are, so text read from a saga (ids, errors, journal lines, message bodies) can never become
/// markup:
///
/// ```swift
/// let cell: HTML = "<td class=\"status\">\(row.status.rawValue)</td>"
/// let page: HTML = "<table>\(cells)</table>"
/// ```
public struct HTML: Sendable, Hashable, ExpressibleByStringInterpolation, CustomStringConvertible {
    /// The markup.
    public private(set) var rendered: String

    /// A literal is markup as written.
    public init(stringLiteral value: String) { rendered = value }

    public init(stringInterpolation: Interpolation) { rendered = stringInterpolation.rendered }

    public var description: String { rendered }

    /// Nothing.
    public static let empty: HTML = ""

    /// Appends `other`.
    public static func + (lhs: HTML, rhs: HTML) -> HTML {
        var joined = lhs
        joined.rendered += rhs.rendered
        return joined
    }

    /// Appends `other` in place.
    public static func += (lhs: inout HTML, rhs: HTML) { lhs.rendered += rhs.rendered }

    /// `text` with `&`, `<`, `>`, `"` and `'` replaced by character references (safe in text and quoted attributes).
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// Escapes strings, inserts fragments.
    public struct Interpolation: StringInterpolationProtocol {
        var rendered = ""

        public init(literalCapacity: Int, interpolationCount: Int) {
            rendered.reserveCapacity(literalCapacity + interpolationCount * 16)
        }

        public mutating func appendLiteral(_ literal: String) { rendered += literal }

        /// Text: escaped.
        public mutating func appendInterpolation(_ text: String) { rendered += HTML.escape(text) }

        /// Text: escaped.
        public mutating func appendInterpolation(_ text: Substring) { rendered += HTML.escape(String(text)) }

        /// A number.
        public mutating func appendInterpolation(_ number: Int) { rendered += String(number) }

        /// Markup: as it is.
        public mutating func appendInterpolation(_ fragment: HTML) { rendered += fragment.rendered }

        /// Markup: each as it is, one after another.
        public mutating func appendInterpolation(_ fragments: [HTML]) {
            for fragment in fragments { rendered += fragment.rendered }
        }
    }
}

extension Array where Element == HTML {
    /// The fragments one after another.
    func joined() -> HTML { HTML(stringLiteral: map(\.rendered).joined()) }
}

/// Percent-encoding for the parts of a URL the pages build from saga ids and filters.
enum URLText {
    /// `text` with everything but unreserved characters (RFC 3986) percent-encoded: safe as a path segment or a query
    /// value.
    static func component(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(Character(Unicode.Scalar(byte)))
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0xF)])
            }
        }
        return out
    }

    /// A query string from `pairs`, leaving out empty values: `?status=suspended&workflow=returns`, or "".
    static func query(_ pairs: [(String, String?)]) -> String {
        let kept = pairs.compactMap { name, value in
            value.flatMap { $0.isEmpty ? nil : "\(name)=\(component($0))" }
        }
        return kept.isEmpty ? "" : "?" + kept.joined(separator: "&")
    }
}
