import socket

print(f"hello from {socket.gethostname()}, installed from a wheel")
