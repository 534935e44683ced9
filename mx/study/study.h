// The study layer: experiments composed from the library, printed by the tools.
#pragma once
