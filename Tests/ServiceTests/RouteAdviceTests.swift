import XCTest
@testable import Service

/// The 404's "Did you mean …?": the nearest route by spelling, parameters filled from the path.
final class RouteAdviceTests: XCTestCase {
    private let routes: [(method: String, pattern: String)] = [
        ("GET", "/healthz"), ("GET", "/v1/models"), ("GET", "/v1/models/{id}"), ("POST", "/v1/embeddings"),
        ("POST", "/v1/classifications"), ("POST", "/v1/reconstructions"), ("POST", "/v1/models/{id}/load"),
        ("POST", "/v1/models/{id}/unload"),
    ]

    func testAMisspeltPathGetsTheNearestRouteWithItsMethods() {
        XCTAssertEqual(RouteAdvice.forPath("/v1/embedding", among: routes), "Did you mean POST /v1/embeddings?")
        XCTAssertEqual(RouteAdvice.forPath("/v1/reconstruction", among: routes), "Did you mean POST /v1/reconstructions?")
        XCTAssertEqual(RouteAdvice.forPath("/health", among: routes), "Did you mean GET /healthz?")
        XCTAssertEqual(RouteAdvice.forPath("/v1/model/x", among: routes), "Did you mean GET /v1/models/{id}?",
                       "a pattern's parameter takes the path's segment")
        XCTAssertEqual(RouteAdvice.forPath("/v1/model/x", among: routes + [("DELETE", "/v1/models/{id}")]),
                       "Did you mean GET or DELETE /v1/models/{id}?", "every method of the pattern is named")
        XCTAssertEqual(RouteAdvice.forPath("/v1/models/bootmae-vit-tiny-fmnist/lod", among: routes),
                       "Did you mean POST /v1/models/{id}/load?")
    }

    func testAPathFarFromEveryRouteGetsNone() {
        XCTAssertNil(RouteAdvice.forPath("/wp-admin/login.php", among: routes))
        XCTAssertNil(RouteAdvice.forPath("/", among: routes))
        XCTAssertNil(RouteAdvice.forPath("/v1/embeddings/extra/segments", among: routes))
    }

    /// The served routes: `/` (the page) is never offered for a short path, an empty parameter is not
    /// filled (the router never matches one), and a long path is not compared at all.
    func testTheServedRoutes() {
        let served = ServiceTests.service.routes.map { (method: $0.method, pattern: $0.pattern) }
        XCTAssertTrue(served.contains { $0.pattern == "/" }, "the page's route is among them")
        XCTAssertNil(RouteAdvice.forPath("/v1", among: served))
        XCTAssertNil(RouteAdvice.forPath("/api", among: served))
        XCTAssertEqual(RouteAdvice.forPath("/v1/models/", among: served), "Did you mean GET /v1/models?")
        XCTAssertEqual(RouteAdvice.forPath("/v1/token", among: served), "Did you mean POST /v1/tokens?")
        XCTAssertEqual(RouteAdvice.forPath("/metric", among: served), "Did you mean GET /metrics?")
        let long = "/v1/models/" + String(repeating: "x", count: 8000) + "/lod"
        XCTAssertNil(RouteAdvice.forPath(long, among: served), "beyond \(RouteAdvice.longestAdvisedPath) bytes: no comparison")
        XCTAssertEqual(RouteAdvice.forPath("/v1/model/" + String(repeating: "x", count: 200), among: served),
                       "Did you mean GET /v1/models/{id}?", "a long parameter within the bound is filled in")
    }

    func testParametersTakeThePathsSegmentsOnlyWhenTheCountsAgree() {
        XCTAssertEqual(RouteAdvice.filledIn("/v1/models/{id}/load", from: "/v1/modls/tiny/load"), "/v1/models/tiny/load")
        XCTAssertEqual(RouteAdvice.filledIn("/v1/models/{id}", from: "/v1/models/a/b"), "/v1/models/{id}")
    }
}
