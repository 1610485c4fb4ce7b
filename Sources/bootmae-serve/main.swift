print("bootmae-serve")
