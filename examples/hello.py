import platform
import sys

print(f"hello from {platform.node()}, python {platform.python_version()}, args={sys.argv[1:]}")
