"""Records the shipped classifier's answers on the committed test images into expected.json.

Posts each image listed in Tests/Fixtures/fmnist/expected.json to a running bootmae-serve's
/v1/classifications and stores the top-1 label as that image's "expected" field, which
Tests/CLITests/ShippedModelTests.swift then checks on every CI run. Run it once after exporting a new
classifier into models/, review the diff (the dataset's "label" beside each answer), and commit both.

    .build/release/bootmae-serve --models-dir models --port 8080 &
    python3 tools/results/record_expected_labels.py --url http://127.0.0.1:8080

Standard library only.
"""
import argparse
import base64
import json
import pathlib
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests/Fixtures/fmnist"


def classify(url, model, images):
    body = json.dumps({"model": model, "input": [base64.b64encode(i).decode() for i in images], "top_k": 1})
    request = urllib.request.Request(f"{url}/v1/classifications", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        rows = json.load(response)["data"]
    return [row["labels"][0] for row in sorted(rows, key=lambda r: r["index"])]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--model", default="bootmae-vit-tiny-fmnist-cls")
    args = parser.parse_args()

    path = FIXTURES / "expected.json"
    expectations = json.loads(path.read_text())
    entries = expectations["images"]
    answers = classify(args.url, args.model, [(FIXTURES / e["file"]).read_bytes() for e in entries])
    for entry, answer in zip(entries, answers):
        entry["expected"] = answer["label"]
        mark = "" if answer["label"] == entry["label"] else "   <- differs from the dataset's label"
        print(f"{entry['file']:28} {answer['label']:12} {answer['score']:.3f}{mark}")
    correct = sum(e["expected"] == e["label"] for e in entries)
    print(f"{correct}/{len(entries)} agree with the dataset's labels")

    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(expectations, indent=2) + "\n")
    temporary.replace(path)


if __name__ == "__main__":
    main()
