// Host emulation of kernels/cuda/sample.cu's draw (the cluster radix select, the tie rank and the warp-run walk)
// against the CPU twin's draw (kernels/cpu/sample.cpp, included), on random vocabularies with ties, all-equal
// logits, ±0, NaN, ±inf and every kind of top-k/top-p/min-p. Written because the CUDA sampler could only be
// compile-checked when it was written; it checks the algorithm, not the kernel (keep the two in step).
//   g++ -std=c++17 -O2 -fopenmp -Ikernels/include kernels/tools/sample_cuda_emul.cpp kernels/common/error.cpp \
//       -o /tmp/sample_cuda_emul && /tmp/sample_cuda_emul      # 20000 cases, about a minute; exit 1 on a mismatch
#include "../cpu/sample.cpp"

#include <cstdio>
#include <random>
#include <algorithm>
using u64 = unsigned long long;

struct Emu {
  std::vector<float> x; int32_t vocab, blocks, slice; float m;
  int32_t len(int b) const { int64_t base = std::min<int64_t>((int64_t)b*slice, vocab); return (int32_t)std::min<int64_t>(slice, vocab-base); }
  int32_t base(int b) const { return (int32_t)std::min<int64_t>((int64_t)b*slice, vocab); }
  // find: first id where running sum of f exceeds r_of(total), with the warp-run decomposition.
  template<class F, class R> int32_t find(F f, R r_of) {
    std::vector<u64> bt(blocks, 0); std::vector<std::vector<u64>> wt(blocks, std::vector<u64>(32,0));
    for (int b=0;b<blocks;++b){ int32_t L=len(b), run=(int32_t)((L + 1023)/1024)*32;
      for(int w=0;w<32;++w){ int32_t w0=std::min(w*run,L), w1=std::min(w0+run,L); for(int32_t i=w0;i<w1;++i) wt[b][w]+=f(base(b)+i); bt[b]+=wt[b][w]; } }
    u64 total=0; for(auto v:bt) total+=v; u64 r=r_of(total); int32_t found=-1; int owners=0;
    for(int b=0;b<blocks;++b){ u64 before=0; for(int c=0;c<b;++c) before+=bt[c];
      if(!(before<=r && r-before<bt[b])) continue; owners++;
      u64 rem=r-before; int w=0; while(w<31 && rem>=wt[b][w]) rem-=wt[b][w++];
      int32_t L=len(b), run=(int32_t)((L+1023)/1024)*32, w0=std::min(w*run,L), w1=std::min(w0+run,L);
      for(int32_t i0=w0;i0<w1 && found<0;i0+=32){ u64 inc=0; for(int lane=0;lane<32;++lane){ int32_t i=i0+lane; inc+= i<w1? f(base(b)+i):0; if(inc>rem){found=base(b)+i;break;} } if(found<0) rem-=inc; }
    }
    if(owners!=1) { printf("owners=%d\n",owners); abort(); }
    return found;
  }
  u64 select(u64 floor, bool by_mass, double target) {
    u64 above=0; uint32_t prefix=0; u64 h_value=0;
    const int shifts[3]={21,10,0}; const uint32_t masks[3]={0x7ff,0x7ff,0x3ff};
    for(int level=0;level<3;++level){ int shift=shifts[level], prev=level==0?32:shifts[level-1];
      std::vector<u64> H(2048,0);
      for(int32_t i=0;i<vocab;++i){ u64 key=gk::sample_key(x[i],i); uint32_t v=key>>32;
        if(key>=floor && (prev==32 || (v>>prev)==prefix)){ u64 w= by_mass? gk::sample_mass(gk::sample_weight(x[i],m)):1; if(w>0) H[(v>>shift)&masks[level]]+=w; } }
      // descending positions
      int first=-1; u64 before=above, pick_above=0, pick_h=0;
      for(int pos=0;pos<2048;++pos){ int d=2047-pos; u64 h=H[d]; if(h>0 && (double)(before+h)>=target){first=pos;pick_above=before;pick_h=h;break;} before+=h; }
      if(first<0) return floor;
      above=pick_above; h_value=pick_h; prefix=(prefix<<(level==2?10:11))|(uint32_t)(2047-first);
    }
    uint32_t v=prefix; u64 unit= by_mass? gk::sample_mass(gk::sample_weight(gk::sample_value_logit(v),m)):1;
    u64 count=h_value/unit; if (h_value % unit) { printf("h_value not multiple\n"); abort(); }
    u64 j=gk::sample_tie_rank(above,unit,count,target);
    u64 lowest=std::max<u64>((u64)v<<32,floor); if(j==count) return lowest;
    int32_t id=find([&](int32_t i)->u64{ u64 key=gk::sample_key(x[i],i); return key>=floor && (uint32_t)(key>>32)==v;},[&](u64){return j-1;});
    return ((u64)v<<32)|(u64)(0xffffffffu-(uint32_t)id);
  }
  int32_t draw(const gk_sampling& p, uint32_t u24) {
    m=-INFINITY; for(auto& l:x){ l=l/p.temperature; m=std::max(m,gk::sample_rank_value(l)); }
    if(m==-INFINITY) return argmax(x.data(),vocab);
    u64 thr=0;
    if(p.top_k>0 && p.top_k<vocab) thr=select(0,false,(double)p.top_k);
    if(p.top_p<1.0f){ u64 s=0; for(int32_t i=0;i<vocab;++i) if(gk::sample_key(x[i],i)>=thr) s+=gk::sample_mass(gk::sample_weight(x[i],m)); thr=select(thr,true,(double)p.top_p*(double)s); }
    return find([&](int32_t i)->u64{ float w=gk::sample_weight(x[i],m); return gk::sample_key(x[i],i)>=thr && !(w<p.min_p)? gk::sample_mass(w):0;},
      [&](u64 total){ return (u64)(((unsigned __int128)u24*total)>>24); });
  }
};
int main(){
  std::mt19937 rng(1); long bad=0, n=0;
  for(int it=0; it<20000; ++it){
    int vocab = std::uniform_int_distribution<int>(1, it%10==0? 300000: 5000)(rng);
    int kind = rng()%8;
    std::vector<float> lg(vocab);
    float spread = std::vector<float>{0.001f,0.5f,3,10,30,100}[rng()%6];
    for(auto& v:lg) v=std::uniform_real_distribution<float>(-spread,spread)(rng);
    if(kind==1) for(auto& v:lg) v=std::round(v);        // many ties
    if(kind==2) std::fill(lg.begin(),lg.end(),1.5f);
    if(kind==3) for(int i=0;i<vocab;i+=1+rng()%5) lg[i]=-INFINITY;
    if(kind==4) { for(int i=0;i<vocab;i+=1+rng()%7) lg[i]=NAN; }
    if(kind==5) { lg[rng()%vocab]=INFINITY; lg[rng()%vocab]=INFINITY; }
    if(kind==6) for(auto& v:lg) v = (rng()%2)? 0.0f : -0.0f;
    if(kind==7) for(auto& v:lg) v=std::round(v*4)/4;
    gk_sampling p{}; p.temperature = std::vector<float>{1,0.7f,1.3f,0.01f}[rng()%4];
    int kk=rng()%6; p.top_k = kk==0?0: kk==1?1: kk==2?64: kk==3? vocab: kk==4? std::max(1,vocab-1): 1+(int)(rng()%std::max(1,vocab));
    int pp=rng()%5; p.top_p = pp==0?1.0f: pp==1?0.95f: pp==2?0.5f: pp==3? 1e-6f: std::uniform_real_distribution<float>(0.01f,1.0f)(rng);
    int mm=rng()%4; p.min_p = mm==0?0: mm==1?0.05f: mm==2?1.0f: std::uniform_real_distribution<float>(0,1)(rng);
    p.repetition_penalty=1; p.seed=rng();
    uint32_t u24 = gk::sample_u24(p.seed, rng()%100);
    std::vector<float> a=lg; int32_t want = draw(a.data(), vocab, p, u24);
    Emu e; e.x=lg; e.vocab=vocab; int blocks = std::min<int>(8, std::max<int>(1,(vocab+8191)/8192)); if(rng()%3==0) blocks=1; e.blocks=blocks; e.slice=(vocab+blocks-1)/blocks;
    int32_t got = e.draw(p,u24); ++n;
    if(got!=want){ if(bad<10) printf("MISMATCH it=%d vocab=%d kind=%d T=%g k=%d p=%g minp=%g want=%d got=%d\n",it,vocab,kind,p.temperature,p.top_k,p.top_p,p.min_p,want,got); ++bad; }
  }
  printf("%ld cases, %ld mismatches\n", n, bad);
  return bad!=0;
}
