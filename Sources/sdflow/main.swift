print("sdflow")
