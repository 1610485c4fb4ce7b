print("bootmae-train")
