"""PyTorch (oneDNN, CPU) times of the SW-ResNet-tiny convolutions at batch 64: forward, data
gradient alone and weight gradient alone, median of 9 wall times, 2 threads. The twin of
`cargo test --release --features opencl --test parity_conv2d -- --ignored --nocapture`.

    python3 scripts/conv_times.py        # needs torch (pip install torch)
"""
import time

import torch
torch.manual_seed(0)
torch.set_num_threads(2)
cases = [
 ("down 32->64 28 s2", 64, 32, 64, 28, 3, 2, 1, 1),
 ("down 64->128 14 s2", 64, 64, 128, 14, 3, 2, 1, 1),
 ("stem 1->32 28", 64, 1, 32, 28, 3, 1, 1, 1),
 ("pw 32 28", 64, 32, 32, 28, 1, 1, 0, 1),
 ("pw 64 14", 64, 64, 64, 14, 1, 1, 0, 1),
 ("pw 128 7", 64, 128, 128, 7, 1, 1, 0, 1),
 ("dw3 32 28", 64, 32, 32, 28, 3, 1, 1, 32),
 ("dw3 64 14", 64, 64, 64, 14, 3, 1, 1, 64),
 ("dw3 128 7", 64, 128, 128, 7, 3, 1, 1, 128),
]
def med(v): v=sorted(v); return v[len(v)//2]
for name,n,ci,co,h,k,s,p,g in cases:
    x = torch.randn(n,ci,h,h); w = torch.randn(co,ci//g,k,k)*0.1
    y = torch.nn.functional.conv2d(x,w,stride=s,padding=p,groups=g); dy = torch.randn_like(y)
    ho = y.shape[2]; macs = n*co*ho*ho*(ci//g)*k*k
    f=[];d=[];wg=[]
    for _ in range(9):
        t=time.perf_counter(); y=torch.nn.functional.conv2d(x,w,stride=s,padding=p,groups=g); f.append(time.perf_counter()-t)
        xr=x.clone().requires_grad_(True); y=torch.nn.functional.conv2d(xr,w,stride=s,padding=p,groups=g)
        t=time.perf_counter(); y.backward(dy); d.append(time.perf_counter()-t)
        wr=w.clone().requires_grad_(True); y=torch.nn.functional.conv2d(x,wr,stride=s,padding=p,groups=g)
        t=time.perf_counter(); y.backward(dy); wg.append(time.perf_counter()-t)
    f,d,wg=med(f),med(d),med(wg); gf=lambda t:2*macs/t/1e9
    print(f"{name:22} fwd {f*1e3:7.2f} ms ({gf(f):5.1f})  dgrad {d*1e3:7.2f} ms ({gf(d):5.1f})  wgrad {wg*1e3:7.2f} ms ({gf(wg):5.1f})")
