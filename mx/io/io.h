// The io layer: reading and writing the files people keep tensors in.
#pragma once
