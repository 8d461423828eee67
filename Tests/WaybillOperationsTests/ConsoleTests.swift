import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import SagaEngine
import SagaStore
import Testing
import WaybillDefinition
import WaybillOperations
import WaybillTestSupport

@testable import WaybillUI

/// The operator console's pages and its guards over HTTP, on the fixture pool, without a browser or a broker
/// (ConsoleBrowserTests drives it in Chromium against a live pool).
@Suite("Operator console")
struct ConsoleTests {
    let directory: TemporaryDirectory
    let pool: PoolDirectory
    static let token = "console-test-token-0123456789"

    init() throws {
        directory = try TemporaryDirectory()
        pool = try Fixture.buildPool(in: directory)
    }

    func console(token: String? = ConsoleTests.token) throws -> OperatorConsole {
        OperatorConsole(
            inspector: try SagaInspector(dataDirectory: pool.path),
            configuration: ConsoleConfiguration(
                port: 0, token: token, poolName: "waybill", broker: nil, deadLetterQueue: "waybill.dead-letter"),
            logger: Logger(label: "console-test"))
    }

    static func text(_ response: TestResponse) -> String { String(buffer: response.body) }

    @Test("text from sagas is escaped wherever a page shows it")
    func escaping() {
        let hostile = "<script>alert('x')</script>&\""
        let fragment: HTML = "<td>\(hostile)</td>"
        #expect(fragment.rendered == "<td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;</td>")
        let nested: HTML = "<tr>\(fragment)</tr>"
        #expect(nested.rendered == "<tr>" + fragment.rendered + "</tr>")
        #expect(URLText.component("of/o 1?&") == "of%2Fo%201%3F%26")
        #expect(URLText.query([("status", "suspended"), ("workflow", nil), ("step", "")]) == "?status=suspended")
    }

    @Test("a page shows hostile saga text as text")
    func hostilePages() {
        let hostile = "<img src=x onerror=alert(1)>"
        let row = SagaRow(
            key: SagaKey(workflow: "wf\"><b>", id: hostile), definitionHash: "h", version: 1, status: .suspended,
            currentStep: "<i>step</i>", owner: nil, startedAt: Fixture.now, updatedAt: Fixture.now,
            failureCode: "</td><script>")
        let page = ConsolePages.list(
            SagaPage(rows: [row], hasMore: false), filter: SagaFilter(), now: Fixture.now, access: .readOnly
        ).rendered
        #expect(
            !page.contains("<img") && !page.contains("<i>step") && !page.contains("<script>") && !page.contains("<b>"))
        #expect(page.contains("&lt;img src=x onerror=alert(1)&gt;"))
        #expect(page.contains("/sagas/wf%22%3E%3Cb%3E/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"))
        let message = ConsolePages.message(title: "<t>", hostile, access: .signedIn(actor: "<a>")).rendered
        #expect(!message.contains("<img") && !message.contains("<t>") && !message.contains("<b><a></b>"))
    }

    @Test("a console on loopback answers only to loopback names")
    func loopbackNames() {
        #expect(Loopback.host(of: "127.0.0.1:8080") == "127.0.0.1")
        #expect(Loopback.host(of: "[::1]:8080") == "::1")
        #expect(Loopback.host(of: "localhost") == "localhost")
        #expect(Loopback.host(of: "evil.example:8080") == "evil.example")
        #expect(["127.0.0.1", "::1", "LOCALHOST", "127.1.2.3"].allSatisfy(Loopback.isLoopback))
        #expect(
            !["evil.example", "localhost.evil.example", "10.0.0.1", "0.0.0.0"].contains(where: Loopback.isLoopback))
    }

    @Test("the overview, list, stuck board and saga page show the fixture pool")
    func pages() async throws {
        try await console(token: nil).application().test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok)
                let page = Self.text(response)
                #expect(page.contains("id=\"count-suspended\""), "\(page)")
                #expect(page.contains("read-only"))
                #expect(
                    response.headers[HTTPFields.Element.Name("Content-Security-Policy")!]?.contains(
                        "default-src 'none'") == true)
            }
            try await client.execute(uri: "/sagas?status=suspended", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Self.text(response).contains("o-1004"))
                #expect(!Self.text(response).contains("o-1001"))
            }
            try await client.execute(uri: "/stuck?group=code", method: .get) { response in
                let page = Self.text(response)
                #expect(page.contains("data-key=\"address_invalid\""), "\(page)")
                #expect(page.contains("o-1004"))
            }
            try await client.execute(uri: "/sagas/order-fulfillment/o-1004", method: .get) { response in
                #expect(response.status == .ok)
                let page = Self.text(response)
                #expect(page.contains("id=\"timeline\""))
                #expect(page.contains("address_invalid"))
                #expect(page.contains("This console is read-only"))
                #expect(!page.contains("<form method=\"post\" action=\"/sagas/"), "no repair forms when read-only")
            }
            try await client.execute(uri: "/sagas?status=sideways", method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(Self.text(response).contains("sideways"))
            }
            try await client.execute(uri: "/search?q=o-1002", method: .get) { response in
                #expect(response.status == .found)
                #expect(response.headers[.location] == "/sagas/order-fulfillment/o-1002")
            }
            try await client.execute(uri: "/search?q=o-9999", method: .get) { response in
                #expect(response.status == .notFound)
            }
        }
    }

    @Test("a read-only console refuses every repair and has no sign-in")
    func readOnlyRefusesRepairs() async throws {
        try await console(token: nil).application().test(.router) { client in
            try await client.execute(
                uri: "/sagas/order-fulfillment/o-1004/repair", method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "action=cancel&reason=test")
            ) { response in
                #expect(response.status == .forbidden)
                #expect(Self.text(response).contains("read-only"))
            }
            try await client.execute(uri: "/login", method: .get) { response in
                #expect(response.status == .forbidden)
            }
        }
    }

    @Test("signing in needs the token and the console's own origin; a signed-in repair is checked locally first")
    func signInAndRepair() async throws {
        let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        try await console().application().test(.router) { client in
            try await client.execute(
                uri: "/sagas/order-fulfillment/o-1004/repair", method: .post, headers: form,
                body: ByteBuffer(string: "action=cancel&reason=test")
            ) { response in
                #expect(response.status == .forbidden)
                #expect(Self.text(response).contains("Sign in with the operator token"))
            }
            try await client.execute(
                uri: "/login", method: .post, headers: form, body: ByteBuffer(string: "actor=alice&token=wrong")
            ) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.setCookie] == nil)
            }
            var foreign = form
            foreign[.origin] = "http://evil.example"
            try await client.execute(
                uri: "/login", method: .post, headers: foreign,
                body: ByteBuffer(string: "actor=alice&token=\(Self.token)")
            ) { response in
                #expect(response.status == .forbidden)
                #expect(response.headers[.setCookie] == nil)
            }
            var own = form
            own[.origin] = "http://localhost"
            let cookie = try await client.execute(
                uri: "/login", method: .post, headers: own,
                body: ByteBuffer(string: "actor=alice+smith&token=\(Self.token)")
            ) { response in
                #expect(response.status == .seeOther)
                let header = try #require(response.headers[.setCookie])
                #expect(header.contains("HttpOnly") && header.contains("SameSite=Strict"), "\(header)")
                return String(header.prefix { $0 != ";" })
            }
            var session = own
            session[.cookie] = cookie
            try await client.execute(uri: "/", method: .get, headers: session) { response in
                #expect(Self.text(response).contains("signed in as <b>alice smith</b>"))
            }
            // A posted form from another site is refused even with the session.
            var forged = session
            forged[.origin] = "http://evil.example"
            try await client.execute(
                uri: "/sagas/order-fulfillment/o-1004/repair", method: .post, headers: forged,
                body: ByteBuffer(string: "action=cancel&reason=forged")
            ) { response in
                #expect(response.status == .forbidden)
            }
            // A finished saga: the local check refuses, nothing is sent, and the saga page says why once.
            try await client.execute(
                uri: "/sagas/order-fulfillment/o-1001/repair", method: .post, headers: session,
                body: ByteBuffer(string: "action=retry&reason=try+it")
            ) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/sagas/order-fulfillment/o-1001")
            }
            try await client.execute(uri: "/sagas/order-fulfillment/o-1001", method: .get, headers: session) {
                response in
                let page = Self.text(response)
                #expect(page.contains("id=\"flash\""), "\(page)")
                #expect(page.contains("retry refused here, nothing was sent"), "\(page)")
            }
            try await client.execute(uri: "/sagas/order-fulfillment/o-1001", method: .get, headers: session) {
                response in
                #expect(!Self.text(response).contains("id=\"flash\""), "the outcome is shown once")
            }
            // The suspended saga offers the repairs, with what the local check predicts.
            try await client.execute(uri: "/sagas/order-fulfillment/o-1004", method: .get, headers: session) {
                response in
                let page = Self.text(response)
                #expect(page.contains("id=\"repair-retry\"") && page.contains("id=\"repair-skip\""), "\(page)")
            }
            // A saga before its pivot can be reset to a step that ran.
            try await client.execute(uri: "/sagas/order-fulfillment/o-1008", method: .get, headers: session) {
                response in
                let page = Self.text(response)
                #expect(page.contains("id=\"repair-reset\"") && page.contains("<option>accept</option>"), "\(page)")
            }
            // A sound request without a broker: refused before anything could be sent.
            try await client.execute(
                uri: "/sagas/order-fulfillment/o-1004/repair", method: .post, headers: session,
                body: ByteBuffer(string: "action=cancel&reason=duplicate")
            ) { response in
                #expect(response.status == .seeOther)
            }
            try await client.execute(uri: "/sagas/order-fulfillment/o-1004", method: .get, headers: session) {
                response in
                #expect(Self.text(response).contains("No broker is configured"))
            }
            try await client.execute(uri: "/logout", method: .post, headers: session) { response in
                #expect(response.status == .seeOther)
            }
            try await client.execute(uri: "/", method: .get, headers: session) { response in
                #expect(Self.text(response).contains("Sign in to repair"))
            }
        }
    }
}
