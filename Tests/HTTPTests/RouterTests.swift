@testable import HTTP
import XCTest

final class RouterTests: XCTestCase {
    private func router() -> Router {
        var router = Router()
        router.get("/v1/models") { _ in .text("list") }
        router.get("/v1/models/{id}") { _ in .text("one") }
        router.add(.delete, "/v1/models/{id}") { _ in .text("gone") }
        router.get("/v1/models/default") { _ in .text("literal") }
        router.get("/v1/models/{id}/versions/{version}") { _ in .text("version") }
        router.post("/v1/embeddings") { _ in .text("embed") }
        return router
    }

    private func pattern(_ match: Router.Match) -> String? {
        switch match {
        case .handler(_, _, let pattern, _), .options(_, let pattern), .methodNotAllowed(_, let pattern): pattern
        case .notFound: nil
        }
    }

    func testExactAndParameterisedPaths() {
        let r = router()
        XCTAssertEqual(pattern(r.match(.get, path: "/v1/models")), "/v1/models")
        XCTAssertEqual(pattern(r.match(.get, path: "/v1/models/default")), "/v1/models/default", "literal wins")
        guard case .handler(_, _, "/v1/models/{id}", let parameters) = r.match(.get, path: "/v1/models/vit%2Fb") else {
            return XCTFail("no match")
        }
        XCTAssertEqual(parameters, ["id": "vit/b"], "parameters are percent-decoded")
        guard case .handler(_, _, _, let both) = r.match(.get, path: "/v1/models/a/versions/3") else { return XCTFail() }
        XCTAssertEqual(both, ["id": "a", "version": "3"])
    }

    func testNotFound() {
        let r = router()
        for path in ["/", "/v1", "/v1/models/", "/v1/models//versions/1", "/v1/models/a/b", "/V1/models", "*"] {
            guard case .notFound = r.match(.get, path: path) else { return XCTFail(path) }
        }
    }

    func testHeadFollowsGetAndAllowListsMethods() {
        let r = router()
        guard case .handler = r.match(.head, path: "/v1/models/x") else { return XCTFail("HEAD should use GET") }
        guard case .methodNotAllowed(let allow, _) = r.match(.put, path: "/v1/models/x") else { return XCTFail() }
        XCTAssertEqual(allow, [.get, .head, .delete, .options])
        guard case .methodNotAllowed(let postOnly, _) = r.match(.get, path: "/v1/embeddings") else { return XCTFail() }
        XCTAssertEqual(postOnly, [.post, .options])
        guard case .options(let options, _) = r.match(.options, path: "/v1/embeddings") else { return XCTFail() }
        XCTAssertEqual(options, [.post, .options])
    }

    func testContentTypeHelper() {
        let json = HTTPRequest(method: .post, target: "/x", headers: ["Content-Type": "Application/JSON; charset=utf-8"])
        XCTAssertNoThrow(try json.requireContentType("application/json"))
        XCTAssertNoThrow(try json.requireContentType("image/*", "application/*"))
        let png = HTTPRequest(method: .post, target: "/x", headers: ["Content-Type": "image/png"])
        XCTAssertThrowsError(try png.requireContentType("application/json")) { error in
            let error = error as! HTTPError
            XCTAssertEqual(error.status, .unsupportedMediaType)
            XCTAssertEqual(error.code, "unsupported_media_type")
        }
        XCTAssertThrowsError(try HTTPRequest(method: .post, target: "/x").requireContentType("application/json"))
    }

    func testErrorEnvelopeIsExact() throws {
        let body = ErrorEnvelope.json(message: "Bad \"image\"\n", type: "invalid_request_error", code: "invalid_image", param: "input")
        XCTAssertEqual(String(decoding: body, as: UTF8.self),
                       #"{"error": {"message": "Bad \"image\"\n", "type": "invalid_request_error", "code": "invalid_image", "param": "input"}}"#)
        let response = HTTPResponse.error(.serviceUnavailable, message: "busy", headers: ["Retry-After": "1"])
        XCTAssertEqual(response.headers["Content-Type"], "application/json")
        XCTAssertEqual(response.headers["Retry-After"], "1")
        let object = try JSONSerialization.jsonObject(with: response.body) as! [String: [String: Any]]
        XCTAssertEqual(object["error"]?["type"] as? String, "server_error")
        XCTAssertEqual(object["error"]?["code"] as? String, "service_unavailable")
        XCTAssertTrue(object["error"]?["param"] is NSNull)
    }

    func testQueryAndDates() {
        XCTAssertEqual(QueryString.parse("a=1&&b=%41+c&bad=%zz&flag"), [
            QueryItem(name: "a", value: "1"), QueryItem(name: "b", value: "A c"),
            QueryItem(name: "bad", value: "%zz"), QueryItem(name: "flag", value: ""),
        ])
        XCTAssertEqual(DateCache.imfFixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT")
    }
}
