import CodedError
import Testing

/// A family with the default hooks.
enum ParcelErrorDomain: ErrorDomain {}
typealias ParcelError = CodedError<ParcelErrorDomain>

extension ErrorCode where Domain == ParcelErrorDomain {
    static let lost = Self(rawValue: "parcel.lost")
    static let damaged = Self(rawValue: "parcel.damaged")
}

/// A second family with a code of the same member name as the first one's.
enum InvoiceErrorDomain: ErrorDomain {}
typealias InvoiceError = CodedError<InvoiceErrorDomain>

extension ErrorCode where Domain == InvoiceErrorDomain {
    static let lost = Self(rawValue: "invoice.lost")
}

/// A family that shows its causes in its own words.
enum ScannerErrorDomain: ErrorDomain {
    static func describe(cause: any Error) -> String {
        if let cause = cause as? ScannerFault { "scanner \(cause.number)" } else { "other: \(cause)" }
    }
}
typealias ScannerError = CodedError<ScannerErrorDomain>

extension ErrorCode where Domain == ScannerErrorDomain {
    static let unreadable = Self(rawValue: "scanner.unreadable")
}

/// A second family, with the default description of causes.
enum LabelErrorDomain: ErrorDomain {}
typealias LabelError = CodedError<LabelErrorDomain>

extension ErrorCode where Domain == LabelErrorDomain {
    static let smudged = Self(rawValue: "label.smudged")
}

struct ScannerFault: Error, CustomStringConvertible {
    var number: Int
    var description: String { "fault #\(number)" }
}

struct Underlying: Error, CustomStringConvertible {
    var text: String
    var description: String { text }
}

@Suite("CodedError")
struct CodedErrorTests {
    @Test("description is code: message without a cause")
    func descriptionWithoutCause() {
        let error = ParcelError(.lost, "parcel 7 left the depot and never arrived; ask the carrier")
        #expect(error.description == "parcel.lost: parcel 7 left the depot and never arrived; ask the carrier")
        #expect("\(error)" == error.description)
    }

    @Test("description is code: message (cause) with a cause")
    func descriptionWithCause() {
        let error = ParcelError(.damaged, "parcel 7 is damaged", cause: Underlying(text: "crushed corner"))
        #expect(error.description == "parcel.damaged: parcel 7 is damaged (crushed corner)")
    }

    @Test("a cause that is itself a coded error shows its own description")
    func nestedCause() {
        let inner = InvoiceError(.lost, "invoice 3 is missing")
        let error = ParcelError(.lost, "parcel 7 cannot ship", cause: inner)
        #expect(error.description == "parcel.lost: parcel 7 cannot ship (invoice.lost: invoice 3 is missing)")
    }

    @Test("the domain's describe hook words the cause")
    func describeHook() {
        let known = ScannerError(.unreadable, "barcode unreadable", cause: ScannerFault(number: 12))
        #expect(known.description == "scanner.unreadable: barcode unreadable (scanner 12)")
        let other = ScannerError(.unreadable, "barcode unreadable", cause: Underlying(text: "glare"))
        #expect(other.description == "scanner.unreadable: barcode unreadable (other: glare)")
        #expect(ScannerError(.unreadable, "barcode unreadable").description == "scanner.unreadable: barcode unreadable")
    }

    @Test("the default cause description is the cause's own text")
    func defaultCauseDescription() {
        #expect(LabelError(.smudged, "label smudged").description == "label.smudged: label smudged")
        let error = LabelError(.smudged, "label smudged", cause: Underlying(text: "rain"))
        #expect(error.description == "label.smudged: label smudged (rain)")
        #expect(error.code.rawValue == "label.smudged")
    }

    @Test("equality and hashing use code and message, not the cause")
    func equalityIgnoresCause() {
        let plain = ParcelError(.lost, "parcel 7 is lost")
        let withCause = ParcelError(.lost, "parcel 7 is lost", cause: Underlying(text: "truck fire"))
        #expect(plain == withCause)
        #expect(Set([plain, withCause]).count == 1)
        #expect(plain != ParcelError(.damaged, "parcel 7 is lost"))
        #expect(plain != ParcelError(.lost, "parcel 8 is lost"))
    }

    @Test("the same member name resolves to each family's own code")
    func codesDoNotMix() {
        #expect(ParcelError(.lost, "m").code.rawValue == "parcel.lost")
        #expect(InvoiceError(.lost, "m").code.rawValue == "invoice.lost")
        #expect(ParcelError.Code.lost.description == "parcel.lost")
    }

    @Test("families are distinct error types, even for equal raw values")
    func familiesAreDistinctTypes() {
        let error: any Error = ParcelError(ErrorCode(rawValue: "shared.code"), "m")
        #expect(error is ParcelError)
        #expect(!(error is InvoiceError))
        #expect(ParcelError.Code(rawValue: "parcel.lost") == .lost)
    }
}
